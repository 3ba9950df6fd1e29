"""Shared fixtures: datasets path, private Mosquitto brokers, a private PostgreSQL cluster."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tests.services import Mosquitto, Postgres

ROOT = Path(__file__).resolve().parent.parent


def datasets_path() -> Path:
    return Path(os.environ.get("FPVERIFY_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = datasets_path()
    if not (path / "fvc2002_db1_b").is_dir():
        pytest.skip(f"FVC datasets not found at {path} (set FPVERIFY_DATASETS)")
    return path


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Start private brokers: mosquitto_factory(conf='...', port=None) -> started Mosquitto."""
    started: list[Mosquitto] = []
    counter = itertools.count()

    def make(conf: str = "", port: int | None = None, replace_conf: bool = False) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto{next(counter)}", conf=conf, port=port, replace_conf=replace_conf)
        started.append(broker)
        return broker.start()

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Mosquitto:
    """A private anonymous broker on 127.0.0.1 and a free port."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    pg = Postgres(tmp_path_factory.mktemp("pg"))
    pg.start()
    yield pg
    pg.stop("immediate")


_db_counter = itertools.count()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh, empty database on the private cluster (SQLAlchemy URL, psycopg 3 driver)."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")
