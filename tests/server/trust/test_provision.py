"""Provisioning: bundle contents, config valid for the station, CLI, reserved names, re-provisioning."""

from __future__ import annotations

import stat

import pytest
import typer
from cryptography import x509
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from fpverify.edge.config import load_config
from fpverify.edge.signing import ResultSigner
from fpverify.server.ops.provision import provision_device
from fpverify.server.trust.cli import register_trust_commands
from fpverify.server.trust.pki import CertificateAuthority, PKIError


def test_bundle_is_complete_private_and_loads_as_station_config(tmp_path):
    ca = CertificateAuthority.create(tmp_path / "ca")
    b = provision_device(tmp_path / "ca", "hosp-a", "desk-01", tmp_path / "out", "https://registry.example",
                         "mqtt.example", 8883, device_token="tok-123", purpose="pharmacy",
                         cache_path=str(tmp_path / "station.db"))
    for p in b.folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    cfg = load_config(b.config_path)  # the station's own validator accepts it
    assert cfg.station.device_id == "desk-01" and cfg.station.site_id == "hosp-a"
    assert cfg.station.purpose.value == "pharmacy"
    assert cfg.mqtt.host == "mqtt.example" and cfg.mqtt.port == 8883
    assert cfg.mqtt.cert_file == b.cert_path and cfg.mqtt.key_file == b.key_path and cfg.mqtt.ca_file == b.ca_path
    assert cfg.registry.url == "https://registry.example" and cfg.registry.ca_file == b.ca_path
    assert cfg.registry.device_token.read_text() == "tok-123"
    assert len(bytes.fromhex(cfg.cache.key.read_text())) == 32
    cert = x509.load_pem_x509_certificate(b.cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "desk-01"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "hosp-a"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:fpverify:site:hosp-a:device:desk-01" in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert ca.issued_by_me(cert)
    ResultSigner.from_files(cfg.mqtt.key_file, "desk-01", cfg.mqtt.cert_file)  # key matches cert


def test_refusals(tmp_path):
    CertificateAuthority.create(tmp_path / "ca")
    with pytest.raises(PKIError, match="reserved"):
        provision_device(tmp_path / "ca", "hosp-a", "registry", tmp_path / "out", None, None)
    with pytest.raises(PKIError, match="letters"):
        provision_device(tmp_path / "ca", "hosp-a", "a/#", tmp_path / "out", None, None)
    with pytest.raises(PKIError, match="no CA"):
        provision_device(tmp_path / "nowhere", "hosp-a", "desk-01", tmp_path / "out", None, None)
    with pytest.raises(PKIError, match="already holds a CA"):
        CertificateAuthority.create(tmp_path / "ca")
    provision_device(tmp_path / "ca", "hosp-a", "desk-01", tmp_path / "out", None, None)
    with pytest.raises(PKIError, match="not empty"):
        provision_device(tmp_path / "ca", "hosp-a", "desk-01", tmp_path / "out", None, None)
    with pytest.raises(PKIError, match="already has a valid certificate"):
        provision_device(tmp_path / "ca", "hosp-a", "desk-01", tmp_path / "out2", None, None)
    # re-provisioning revokes the old certificate (superseded) and puts it in the CRL
    ca = CertificateAuthority(tmp_path / "ca")
    old = ca.active("desk-01")[0]
    provision_device(tmp_path / "ca", "hosp-a", "desk-01", tmp_path / "out", None, None, replace=True)
    assert ca.is_revoked(old.serial) and len(ca.active("desk-01")) == 1
    assert ca.load_crl().get_revoked_certificate_by_serial_number(old.serial) is not None


def test_cli_provisions_registers_and_revokes(tmp_path, monkeypatch):
    from fpverify.server.core.config import get_settings
    from fpverify.server.crud import devices
    from fpverify.server.db import Database

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    db = Database(url)
    db.create_all()
    monkeypatch.setenv("FPVERIFY_CA_DIR", str(tmp_path / "ca"))
    get_settings.cache_clear()
    app = typer.Typer()
    register_trust_commands(app)
    run = CliRunner().invoke
    r = run(app, ["pki", "init"])
    assert r.exit_code == 0, r.output
    r = run(app, ["provision-device", "--site", "hosp-a", "--name", "desk-07", "--out", str(tmp_path / "out"),
                  "--broker-host", "127.0.0.1", "--database-url", url])
    assert r.exit_code == 0, r.output
    token = (tmp_path / "out" / "desk-07" / "device.token").read_text().strip()
    with db.session() as s:
        assert devices.device_for_token(s, token).id == "desk-07"
    r = run(app, ["provision-device", "--site", "hosp-a", "--name", "desk-07", "--out", str(tmp_path / "o2"),
                  "--database-url", url])
    assert r.exit_code == 2 and "exists" in r.output  # no second registration, no second cert
    assert len(CertificateAuthority(tmp_path / "ca").index()) == 1
    r = run(app, ["pki", "issue-server", "--name", "broker", "--host", "mqtt.example", "--out", str(tmp_path / "srv")])
    assert r.exit_code == 0 and (tmp_path / "srv" / "broker.key").exists()
    r = run(app, ["pki", "revoke", "--device", "desk-07"])
    assert r.exit_code == 0 and "revoked desk-07" in r.output
    r = run(app, ["pki", "list"])
    assert "revoked" in r.output and "broker" in r.output
    r = run(app, ["pki", "crl", "--days", "7"])
    assert r.exit_code == 0
    get_settings.cache_clear()


def test_bundle_without_token_until_a_supervisor_approves_the_device(tmp_path, client, tokens):
    """The API's way: IT provisions the bundle (no token in it) and registers the device; the
    supervisor who approves receives the token and installs it on the station."""
    import os

    from tests.server.helpers import auth

    CertificateAuthority.create(tmp_path / "ca")
    b = provision_device(tmp_path / "ca", "site-1", "desk-05", tmp_path / "out", "https://registry.example",
                         "mqtt.example")
    assert b.token_path is None and not (b.folder / "device.token").exists()
    assert "supervisor" in (b.folder / "INSTALL.txt").read_text()
    cfg = load_config(b.config_path)
    assert cfg.registry.device_token.file == b.folder / "device.token"  # named, not there yet
    r = client.post("/api/v1/devices", json={"device_id": "desk-05", "site_id": "site-1"},
                    headers=auth(tokens["sysadmin"]))
    assert r.status_code == 201 and "token" not in r.json()
    r = client.post(f"/api/v1/approvals/{r.json()['approval']['id']}/approve", json={},
                    headers=auth(tokens["supervisor"]))
    token = r.json()["device_token"]
    fd = os.open(b.folder / "device.token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # what INSTALL.txt says
    os.write(fd, token.encode() + b"\n")
    os.close(fd)
    installed = load_config(b.config_path).registry.device_token.read_text()
    assert client.get("/api/v1/devices/desk-05/templates", headers=auth(installed)).status_code == 200
