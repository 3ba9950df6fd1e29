"""The registry API over HTTPS with a certificate from server.pki (uvicorn's own TLS), as a station
with the provisioned ca.pem sees it: verified TLS works, plain HTTP and a foreign CA do not."""

from __future__ import annotations

import ssl
import threading
import time

import httpx
import pytest
import uvicorn

from fpverify.server.app import create_app
from fpverify.server.db import Database
from fpverify.server.trust.pki import CertificateAuthority, write_identity
from tests.server.conftest import make_settings
from tests.services import free_port, wait_port


@pytest.fixture
def https_registry(pki, tmp_path):
    key, cert = pki.ca.issue_server("registry-api", ["127.0.0.1", "localhost"])
    crt_path, key_path = write_identity(tmp_path / "api", "registry-api", key, cert)
    db = Database(settings=make_settings(f"sqlite:///{tmp_path / 'r.db'}"))
    db.create_all()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db.settings, db), host="127.0.0.1", port=port,
                                           ssl_certfile=str(crt_path), ssl_keyfile=str(key_path), log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_port(port, 30)
    while not server.started:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    t.join(15)
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
