"""Trust commands: `fpverify server provision-device` and `fpverify server pki ...`.

server/cli.py wires them in with one line: `register_trust_commands(server_app)`.
The CA folder comes from --ca-dir or FPVERIFY_CA_DIR (default ./fpverify-ca).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from fpverify.server.cli_db import database_command

pki_app = typer.Typer(no_args_is_help=True, help="The registry CA: device certificates, revocation, CRL.")


def _ca_dir(value: Path | None) -> Path:
    return value or Path(os.environ.get("FPVERIFY_CA_DIR", "fpverify-ca"))


CaOpt = typer.Option(None, "--ca-dir", help="CA folder (default: FPVERIFY_CA_DIR or ./fpverify-ca)")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


@database_command
def provision_device_cmd(
        site: str = typer.Option(..., "--site", help="site id (certificate OU)"),
        name: str = typer.Option(..., "--name", help="device id (certificate CN, MQTT user and topic)"),
        out: Path = typer.Option(Path("provisioned"), "--out", help="bundles go to OUT/<name>/"),
        ca_dir: Path = CaOpt,
        registry_url: str = typer.Option(None, "--registry-url", help="https://... the station pulls templates from"),
        broker_host: str = typer.Option(None, "--broker-host"),
        broker_port: int = typer.Option(8883, "--broker-port"),
        purpose: str = typer.Option("registration", "--purpose"),
        mqtt_version: str = typer.Option("5", "--mqtt-version"),
        register: bool = typer.Option(True, "--register/--no-register",
                                      help="also register the device in the database and bundle its feed token "
                                           "(console: no approval); --no-register for a device registered "
                                           "through the API, whose token the approving supervisor installs"),
        replace: bool = typer.Option(False, "--replace", help="re-provision: revoke the device's old certificate"),
        database_url: str = typer.Option(None, "--database-url", help="overrides FPVERIFY_DATABASE_URL")) -> None:
    """Make a station's key pair, certificate, config and credentials bundle.

    With --register (the default) the device's feed token is issued at once and bundled: like
    create-user, the console is the root of trust (audited as "console"). With --no-register the
    bundle has no token; the device is registered through the API and its token comes from the
    supervisor who approves the `device_token` request (docs/server.md)."""
    from fpverify.server.ops.provision import provision_device
    from fpverify.server.trust.pki import PKIError

    token = None
    if register:
        from fpverify.server.core.config import get_settings
        from fpverify.server.crud import devices, users
        from fpverify.server.crud.errors import DomainError
        from fpverify.server.db import Database
        from fpverify.server.models import Device

        settings = get_settings()
        db = Database(database_url or settings.database_url, settings=settings)
        with db.session() as s:
            try:
                if replace and s.get(Device, name) is not None:
                    _dev, token = devices.rotate_token(s, users.CONSOLE, name)
                else:
                    _dev, token = devices.create_device(s, users.CONSOLE, site, name, None, create_site_if_missing=True)
                bundle = provision_device(_ca_dir(ca_dir), site, name, out, registry_url, broker_host, broker_port,
                                          device_token=token, purpose=purpose, mqtt_version=mqtt_version,
                                          replace=replace)
            except (DomainError, PKIError) as exc:
                s.rollback()
                _fail(exc)
            s.commit()  # the token is valid only once the bundle holding it exists
    else:
        try:
            bundle = provision_device(_ca_dir(ca_dir), site, name, out, registry_url, broker_host, broker_port,
                                      purpose=purpose, mqtt_version=mqtt_version, replace=replace)
        except PKIError as exc:
            _fail(exc)
    typer.echo(f"device {bundle.device_id} (site {bundle.site}): certificate {bundle.serial:x}; "
               f"bundle in {bundle.folder} (copy it to the station's /etc/fpverify/)")


@pki_app.command("init")
def init_cmd(ca_dir: Path = CaOpt, common_name: str = typer.Option("fpverify registry CA", "--cn")) -> None:
    """Create the CA (key, certificate, empty CRL). Refuses to overwrite an existing one."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError

    try:
        ca = CertificateAuthority.create(_ca_dir(ca_dir), common_name)
    except PKIError as exc:
        _fail(exc)
    typer.echo(f"CA created in {ca.dir}; distribute {ca.cert_path}, keep ca.key on this host only")


@pki_app.command("issue-server")
def issue_server_cmd(name: str = typer.Option("broker", "--name", help="certificate CN"),
                     host: list[str] = typer.Option(["127.0.0.1", "localhost"], "--host",
                                                    help="DNS name or IP in the SAN (repeat)"),
                     out: Path = typer.Option(Path("."), "--out"), ca_dir: Path = CaOpt) -> None:
    """A TLS server certificate for the broker or the registry's HTTPS API."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError, write_identity

    try:
        key, cert = CertificateAuthority(_ca_dir(ca_dir)).issue_server(name, host)
    except PKIError as exc:
        _fail(exc)
    crt, k = write_identity(out, name, key, cert)
    typer.echo(f"{crt} and {k} written (SAN: {', '.join(host)})")


@pki_app.command("issue-client")
def issue_client_cmd(name: str = typer.Option("registry", "--name", help="CN: the MQTT user name the ACL knows"),
                     out: Path = typer.Option(Path("."), "--out"), ca_dir: Path = CaOpt) -> None:
    """A service identity for MQTT (the registry's ingest worker: CN 'registry')."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError, write_identity

    try:
        key, cert = CertificateAuthority(_ca_dir(ca_dir)).issue_client(name)
    except PKIError as exc:
        _fail(exc)
    crt, k = write_identity(out, name, key, cert)
    typer.echo(f"{crt} and {k} written")


@pki_app.command("revoke")
def revoke_cmd(device: str = typer.Option(None, "--device", help="revoke every certificate of this device"),
               serial: str = typer.Option(None, "--serial", help="hex serial of one certificate"),
               reason: str = typer.Option("key_compromise", "--reason"), ca_dir: Path = CaOpt) -> None:
    """Revoke and rewrite crl.pem. The registry refuses the device's results at once; reload the
    broker (systemctl reload mosquitto) so it refuses the connection too."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError

    if (device is None) == (serial is None):
        _fail(ValueError("give exactly one of --device or --serial"))
    try:
        ca = CertificateAuthority(_ca_dir(ca_dir))
        rows = ca.revoke_device(device, reason) if device else [ca.revoke(int(serial, 16), reason)]
    except (PKIError, ValueError) as exc:
        _fail(exc)
    for r in rows:
        typer.echo(f"revoked {r.common_name} serial {r.serial:x} ({r.reason})")
    typer.echo(f"CRL rewritten: {ca.crl_path}")


@pki_app.command("crl")
def crl_cmd(days: int = typer.Option(30, "--days"), ca_dir: Path = CaOpt) -> None:
    """Re-sign the CRL (cron it well inside --days: an expired CRL makes the broker refuse everyone)."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError

    try:
        path = CertificateAuthority(_ca_dir(ca_dir)).write_crl(days)
    except PKIError as exc:
        _fail(exc)
    typer.echo(f"{path} valid for {days} days")


@pki_app.command("list")
def list_cmd(ca_dir: Path = CaOpt) -> None:
    """Every certificate issued, with its state."""
    from fpverify.server.trust.pki import CertificateAuthority, PKIError

    try:
        rows = CertificateAuthority(_ca_dir(ca_dir)).index()
    except PKIError as exc:
        _fail(exc)
    for r in rows:
        state = f"revoked {r.revoked_at[:19]} ({r.reason})" if r.revoked else f"valid until {r.not_after[:10]}"
        typer.echo(f"{r.serial:x}  {r.kind:<6} {r.common_name:<24} {r.site or '-':<16} {state}")


def register_trust_commands(server_app: typer.Typer) -> None:
    server_app.command("provision-device")(provision_device_cmd)
    server_app.add_typer(pki_app, name="pki")
