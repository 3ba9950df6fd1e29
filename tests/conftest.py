"""Shared fixtures: datasets path, private Mosquitto brokers, a private PostgreSQL cluster (started by
fpverify.services, the one way tests, benchmarks and the demo start services), a test CA and a
broker on the shipped config."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from fpverify.server.trust.pki import CertificateAuthority, write_identity
from fpverify.services import PrivateMosquitto, PrivatePostgres
from tests.helpers import datasets_path
from tests.server.trust.broker import Pki, shipped_conf


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = datasets_path()
    if not (path / "fvc2002_db1_b").is_dir():
        pytest.skip(f"FVC datasets not found at {path} (set FPVERIFY_DATASETS)")
    return path


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Start private brokers: mosquitto_factory(conf='...', port=None) -> started Mosquitto."""
    started: list[PrivateMosquitto] = []
    counter = itertools.count()

    def make(conf: str = "", port: int | None = None, replace_conf: bool = False) -> PrivateMosquitto:
        broker = PrivateMosquitto(tmp_path / f"mosquitto{next(counter)}", conf=conf, port=port, replace_conf=replace_conf)
        started.append(broker)
        return broker.start()

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory) -> PrivateMosquitto:
    """A private anonymous broker on 127.0.0.1 and a free port."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    pg = PrivatePostgres(tmp_path_factory.mktemp("pg"), durable=False)
    pg.start()
    yield pg
    pg.stop("immediate")


_db_counter = itertools.count()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh, empty database on the private cluster (SQLAlchemy URL, psycopg 3 driver)."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


# A CA made by server.pki and a real Mosquitto from the SHIPPED config (firmware_cfg/mosquitto/), with
# only ports and paths rewritten: the trust tests and the kiosk's end-to-end test.
@pytest.fixture
def pki(tmp_path) -> Pki:
    ca = CertificateAuthority.create(tmp_path / "ca")
    files = tmp_path / "ids"
    key, cert = ca.issue_server("broker", ["127.0.0.1", "localhost"])
    write_identity(files, "broker", key, cert)
    key, cert = ca.issue_client("registry")
    write_identity(files, "registry", key, cert)
    p = Pki(tmp_path / "ca", ca, files)
    for dev in ("desk-a", "desk-b", "desk-r"):
        p.device(dev)
    return p


@pytest.fixture
def secure_broker(pki, mosquitto_factory, tmp_path):
    return mosquitto_factory(conf=shipped_conf(pki, tmp_path), replace_conf=True)
