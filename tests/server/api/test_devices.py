"""Device lifecycle through the API: disable / enable, and retirement, which is for good."""

from __future__ import annotations

from fpverify.server.trust.pki import CertificateAuthority
from tests.server.helpers import auth

P = "/api/v1"


def test_retired_device_stays_out_token_ends_and_certificate_is_revoked(app, client, tokens, tmp_path):
    ca = CertificateAuthority.create(tmp_path / "ca")
    ca.issue_device("dev-1", "site-1")
    app.state.settings.ca_dir = ca.dir
    sysadmin, device = auth(tokens["sysadmin"]), auth(tokens["device"])
    assert client.get(f"{P}/devices/dev-1/templates?since=0", headers=device).status_code == 200
    r = client.post(f"{P}/devices/dev-1/retire", headers=sysadmin)
    assert r.status_code == 200 and r.json()["disabled"] and r.json()["retired_at"]
    assert client.get(f"{P}/devices/dev-1/templates?since=0", headers=device).status_code == 401
    assert [row.reason for row in ca.index() if row.common_name == "dev-1"] == ["cessation_of_operation"]
    r = client.post(f"{P}/devices/dev-1/enable", headers=sysadmin)
    assert r.status_code == 409 and "retired" in r.json()["detail"]
    assert client.post(f"{P}/devices/dev-1/retire", headers=sysadmin).status_code == 409
    assert client.post(f"{P}/devices/dev-1/retire", headers=auth(tokens["supervisor"])).status_code == 403
    assert client.post(f"{P}/devices/nope/retire", headers=sysadmin).status_code == 404


def test_disable_then_enable(client, tokens):
    sysadmin = auth(tokens["sysadmin"])
    assert client.post(f"{P}/devices/dev-1/disable", headers=sysadmin).json()["disabled"] is True
    assert client.get(f"{P}/devices/dev-1/templates?since=0", headers=auth(tokens["device"])).status_code == 401
    r = client.post(f"{P}/devices/dev-1/enable", headers=sysadmin)
    assert r.status_code == 200 and r.json()["disabled"] is False and r.json()["retired_at"] is None
