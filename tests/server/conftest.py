"""Fixtures of the registry tests: a migrated SQLite app by default, PostgreSQL where asked."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fpverify.server.app import create_app
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from tests.server.helpers import ROLES, login, make_settings, seed_users


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request, tmp_path) -> str:
    """Each test using it runs on SQLite and on the private PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(sqlite_url):
    d = Database(settings=make_settings(sqlite_url))
    d.create_all()
    yield d
    d.dispose()


@pytest.fixture
def app(db):
    return create_app(db.settings, db)


def _migrated(url: str) -> Database:
    d = Database(settings=make_settings(url))
    d.migrate()
    return d


@pytest.fixture
def any_db(any_url):
    """A migrated registry database, once on SQLite and once on the private PostgreSQL."""
    d = _migrated(any_url)
    yield d
    d.dispose()


@pytest.fixture
def pg_db(pg_url):
    """A migrated registry database on the private PostgreSQL."""
    d = _migrated(pg_url)
    yield d
    d.dispose()


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def tokens(db, client) -> dict[str, str]:
    """A bearer token for each role (and a second supervisor) plus a device token ('device')."""
    seed_users(db)
    toks = {name: login(client, name) for name in (*ROLES, "supervisor2")}
    with db.session() as s:
        _, toks["device"] = devices_crud.create_device(s, "test", "site-1", "dev-1", create_site_if_missing=True)
        s.commit()
    return toks
