"""The registry API over HTTPS with a certificate from server.pki (uvicorn's own TLS), as a station
with the provisioned ca.pem sees it: verified TLS works, plain HTTP and a foreign CA do not."""

from __future__ import annotations

import ssl

import httpx
import pytest

from fpverify.server.app import create_app
from fpverify.server.db import Database
from fpverify.server.trust.pki import CertificateAuthority, write_identity
from fpverify.services import ServedApp
from tests.server.helpers import make_settings


@pytest.fixture
def https_registry(pki, tmp_path):
    key, cert = pki.ca.issue_server("registry-api", ["127.0.0.1", "localhost"])
    crt_path, key_path = write_identity(tmp_path / "api", "registry-api", key, cert)
    db = Database(settings=make_settings(f"sqlite:///{tmp_path / 'r.db'}"))
    db.create_all()
    served = ServedApp(create_app(db.settings, db), ssl_certfile=str(crt_path), ssl_keyfile=str(key_path)).start()
    yield served.port
    served.stop(15)
    db.dispose()


def test_https_with_the_registry_ca(pki, https_registry, tmp_path):
    port = https_registry
    r = httpx.get(f"https://127.0.0.1:{port}/api/v1/health", verify=ssl.create_default_context(
        cafile=str(pki.ca.cert_path)), timeout=10)
    assert r.status_code == 200
    with pytest.raises(httpx.HTTPError):  # the system trust store does not know our CA
        httpx.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=10)
    rogue = CertificateAuthority.create(tmp_path / "rogue")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://127.0.0.1:{port}/api/v1/health",
                  verify=ssl.create_default_context(cafile=str(rogue.cert_path)), timeout=10)
    with pytest.raises(httpx.HTTPError):  # no plain-text fallback on the same port
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
