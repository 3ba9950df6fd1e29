"""Provisioning a station: key pair and certificate from the registry's CA, config, credentials.

`provision_device(...)` writes one folder per station, meant to be copied as is to the station's
/etc/fpverify/ (mode 700, owned by the service user):

    <out_dir>/<device_id>/
        edge.toml        station config (edge/config.py schema); paths relative to it
        ca.pem           the registry CA: trust anchor for the broker and the HTTPS API
        device.crt       client certificate, CN = device id, OU = site
        device.key       its ECDSA P-256 key: TLS client auth and result signing (0600)
        cache.key        32 random bytes (hex) for the SQLCipher store (0600)
        device.token     the API token for the template feed, when registered on the console (0600)
        INSTALL.txt      what goes where on the station (systemd credentials)

The feed token reads card numbers and templates. Registered on the console (the root of trust,
`--register`), the bundle holds it. Registered through the API, it does not: edge.toml still names
device.token, and the supervisor who approves the device's `device_token` request receives the
token (once) and installs it on the station; until then the station cannot sync its cache.

Every file is written 0600. Nothing here is needed by the registry afterwards: the CA keeps the
certificate (for checking signatures) and the database keeps only the token's hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fpverify.server.trust.pki import (
    CertificateAuthority,
    PKIError,
    cert_pem,
    check_device_id,
    key_pem,
    write_private,
)

PURPOSES = ("registration", "admission", "billing", "pharmacy", "bedside")


@dataclass(frozen=True)
class Bundle:
    device_id: str
    site: str
    folder: Path
    config_path: Path
    ca_path: Path
    cert_path: Path
    key_path: Path
    cache_key_path: Path
    token_path: Path | None
    serial: int


def _q(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML escapes)."""
    return json.dumps(str(value), ensure_ascii=False)


def edge_config(device_id: str, site: str, registry_url: str | None, broker_host: str | None,
                broker_port: int = 8883, purpose: str = "registration", mqtt_version: str = "5",
                cache_path: str = "/var/lib/fpverify/station.db", with_token: bool = True) -> str:
    """The station TOML for a provisioned device (validated by edge.config.load_config)."""
    lines = [
        "# fpverify station configuration, written by `fpverify server provision-device`.",
        "# Paths are relative to this file: install the whole folder as /etc/fpverify/.",
        "",
        "[station]",
        f"device_id = {_q(device_id)}",
        f"site_id = {_q(site)}",
        f"purpose = {_q(purpose)}",
        "sign_results = true  # counter + ECDSA signature with the device key (docs/trust.md)",
        "",
        "[cache]",
        f"path = {_q(cache_path)}",
        'key = { credential = "fpverify-cache-key", file = "cache.key" }',
        "",
        "[registry]",
    ]
    if registry_url:
        lines.append(f"url = {_q(registry_url)}")
    if with_token:
        lines.append('device_token = { credential = "fpverify-device-token", file = "device.token" }')
    lines += ['ca_file = "ca.pem"', "", "[mqtt]"]
    if broker_host:
        lines += [f"host = {_q(broker_host)}", f"port = {int(broker_port)}"]
    lines += [f"version = {_q(mqtt_version)}", 'ca_file = "ca.pem"',
              'cert_file = "device.crt"  # mutual TLS; the same key signs every result',
              'key_file = "device.key"', ""]
    return "\n".join(lines)


INSTALL = """Station {device_id} (site {site}), certificate serial {serial:x}, valid until {not_after}.

On the station, as root:
  install -d -m 700 -o fpverify -g fpverify /etc/fpverify
  cp -p edge.toml ca.pem device.crt device.key cache.key {token} /etc/fpverify/
  chown fpverify:fpverify /etc/fpverify/*
{token_step}  systemctl enable --now fpverify-edge   (firmware_cfg/fpverify-edge.service)

The unit's LoadCredential= lines read cache.key and device.token from there; the key files stay
0600. Lost or stolen station: `fpverify server pki revoke --device {device_id}`, then reload the
broker (it re-reads crl.pem) -- the registry refuses the station's results at once.
"""


TOKEN_STEP = """  The feed token is not in this bundle: the supervisor who approved the device's access
  (POST /approvals/ID/approve, answer field device_token) enters it here, once:
    install -m 600 -o fpverify -g fpverify /dev/stdin /etc/fpverify/device.token   (paste, Ctrl-D)
"""


def provision_device(ca_dir: str | os.PathLike, site: str, name: str, out_dir: str | os.PathLike,
                     registry_url: str | None, broker_host: str | None, broker_port: int = 8883, *,
                     device_token: str | None = None, purpose: str = "registration", mqtt_version: str = "5",
                     replace: bool = False, days: int | None = None,
                     cache_path: str = "/var/lib/fpverify/station.db") -> Bundle:
    """Issue the station's identity and write its bundle; returns where everything is.

    `name` is the device id (certificate CN, MQTT user name and client id, topic segment).
    `device_token`: the feed token from registering the device on the console
    (server.crud.devices.create_device); None for a device whose token a supervisor approves.
    """
    check_device_id(name)
    if purpose not in PURPOSES:
        raise PKIError(f"purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    if mqtt_version not in ("5", "3.1.1"):
        raise PKIError("mqtt version: '5' or '3.1.1'")
    folder = Path(out_dir) / name
    if folder.exists() and any(folder.iterdir()) and not replace:
        raise PKIError(f"{folder} exists and is not empty; remove it or use --replace")
    ca = CertificateAuthority(ca_dir)
    key, cert = ca.issue_device(name, site, replace=replace, **({"days": days} if days else {}))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = {n: folder / n for n in ("edge.toml", "ca.pem", "device.crt", "device.key", "cache.key")}
    write_private(paths["ca.pem"], ca.cert_path.read_bytes())
    write_private(paths["device.crt"], cert_pem(cert))
    write_private(paths["device.key"], key_pem(key))
    write_private(paths["cache.key"], os.urandom(32).hex().encode() + b"\n")
    token_path = None
    if device_token:
        token_path = folder / "device.token"
        write_private(token_path, device_token.encode() + b"\n")
    feed = token_path is not None or registry_url is not None
    write_private(paths["edge.toml"], edge_config(name, site, registry_url, broker_host, broker_port, purpose,
                                                  mqtt_version, cache_path, with_token=feed).encode())
    write_private(folder / "INSTALL.txt", INSTALL.format(
        device_id=name, site=site, serial=cert.serial_number, not_after=cert.not_valid_after_utc.date(),
        token="device.token" if token_path else "",
        token_step=TOKEN_STEP if feed and token_path is None else "").encode())
    return Bundle(device_id=name, site=site, folder=folder, config_path=paths["edge.toml"], ca_path=paths["ca.pem"],
                  cert_path=paths["device.crt"], key_path=paths["device.key"], cache_key_path=paths["cache.key"],
                  token_path=token_path, serial=cert.serial_number)
