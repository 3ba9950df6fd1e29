"""Fixtures of the registry tests: a migrated SQLite app by default, PostgreSQL where asked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from fpverify.server.app import create_app
from fpverify.server.core.config import Settings
from fpverify.server.crud import devices as devices_crud
from fpverify.server.crud import users as users_crud
from fpverify.server.db import Database

PASSWORD = "correct horse battery"
ROLES = ("sysadmin", "enroller", "auditor", "supervisor")


def make_settings(url: str, **kw) -> Settings:
    """Test settings. Most tests upload opaque random bytes as templates, so the matcher's decode
    check is off unless a test turns it on (test_dedup_matcher uses real templates)."""
    kw.setdefault("validate_templates", False)
    return Settings(database_url=url, mqtt_enabled=False, national_id_key="test-national-id-key",
                    login_max_failures=3, **kw)


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


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def seed_users(db: Database, extra_supervisor: bool = True) -> dict[str, int]:
    ids = {}
    with db.session() as s:
        for role in ROLES:
            ids[role] = users_crud.create_user(s, "test", role, PASSWORD, role).id
        if extra_supervisor:
            ids["supervisor2"] = users_crud.create_user(s, "test", "supervisor2", PASSWORD, "supervisor").id
        s.commit()
    return ids


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def tokens(db, client) -> dict[str, str]:
    """A bearer token for each role (and a second supervisor) plus a device token ('device')."""
    seed_users(db)
    toks = {name: login(client, name) for name in (*ROLES, "supervisor2")}
    with db.session() as s:
        _, toks["device"] = devices_crud.create_device(s, "test", "site-1", "dev-1", create_site_if_missing=True)
        s.commit()
    return toks


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload_body(card: str, device: str = "dev-1", templates: list[bytes] | None = None, finger: int = 1,
                role: str = "holder", delegate_id: str | None = None) -> dict:
    import base64

    templates = templates or [uuid.uuid4().bytes + b"tmpl" for _ in range(3)]
    return {
        "enrollment_id": str(uuid.uuid4()), "device_id": device, "card_number": card, "role": role,
        "delegate_id": delegate_id, "operator_id": "op-7",
        "consent": {"given_at": datetime.now(UTC).isoformat(), "scope": "fingerprint verification",
                    "witnessed_by": "op-7"},
        "fingers": [{"finger": finger, "templates": [base64.b64encode(t).decode() for t in templates],
                     "qualities": [80] * len(templates)}],
    }
