"""Plain helpers of the registry tests (fixtures are in conftest.py): settings, users, logins, bodies."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from fpverify.server.core.config import Settings
from fpverify.server.core.security import set_password_cost
from fpverify.server.crud import users as users_crud
from fpverify.server.db import Database

PASSWORD = "correct horse battery"
ROLES = ("sysadmin", "enroller", "auditor", "supervisor", "his")
# Cheap Argon2 for tests (many accounts are created); the production default stays strong.
CHEAP_HASHING = {"password_time_cost": 1, "password_memory_kib": 64}
set_password_cost(CHEAP_HASHING["password_time_cost"], CHEAP_HASHING["password_memory_kib"])


def make_settings(url: str, **kw) -> Settings:
    """Test settings. Most tests upload opaque random bytes as templates, so the matcher's decode
    check is off unless a test turns it on (test_dedup_matcher uses real templates)."""
    kw.setdefault("validate_templates", False)
    return Settings(database_url=url, mqtt_enabled=False, national_id_key="test-national-id-key",
                    **(CHEAP_HASHING | kw))


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


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload_body(card: str, device: str = "dev-1", templates: list[bytes] | None = None, finger: int = 1,
                role: str = "holder", delegate_id: str | None = None) -> dict:
    templates = templates or [uuid.uuid4().bytes + b"tmpl" for _ in range(3)]
    return {
        "enrollment_id": str(uuid.uuid4()), "device_id": device, "card_number": card, "role": role,
        "delegate_id": delegate_id, "operator_id": "op-7",
        "consent": {"given_at": datetime.now(UTC).isoformat(), "scope": "fingerprint verification",
                    "witnessed_by": "op-7"},
        "fingers": [{"finger": finger, "templates": [base64.b64encode(t).decode() for t in templates],
                     "qualities": [80] * len(templates)}],
    }
