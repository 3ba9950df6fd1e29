"""Test data for the dashboard: users of every role, sites, devices, holders, results, alerts, stays.

Rows go in through the registry's crud functions where one exists (so audit rows are real) and
verification results through the ingest worker's row/alert shape (the worker itself is exercised
by the end-to-end tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fpverify.server.crud import devices as devices_crud
from fpverify.server.crud import holders as holders_crud
from fpverify.server.crud import stays as stays_crud
from fpverify.server.crud import users as users_crud
from fpverify.server.db import Database
from fpverify.server.models import Alert, AlertStatus, VerificationRecord

PASSWORD = "correct horse battery"
KEY = "test-national-id-key"
NAMES = {"C-1001": "Wang Fang", "C-1002": "Li Wei", "C-1003": "Zhang Min", "C-1004": "Liu Yang"}


def seed_users(db: Database) -> None:
    with db.session() as s:
        for role in ("sysadmin", "enroller", "auditor", "supervisor"):
            users_crud.create_user(s, "test", role, PASSWORD, role)
        s.commit()


def seed_world(db: Database) -> dict[str, str]:
    """Sites, devices and holders; returns device tokens."""
    tokens = {}
    with db.session() as s:
        devices_crud.create_site(s, "test", "city-hospital", "City Hospital")
        devices_crud.create_site(s, "test", "riverside-pharmacy", "Riverside Pharmacy")
        for dev, site in (("city-reg-1", "city-hospital"), ("city-ward-3", "city-hospital"),
                          ("rsp-counter-1", "riverside-pharmacy")):
            _, tokens[dev] = devices_crud.create_device(s, "test", site, dev, name=dev)
        for card, name in NAMES.items():
            holders_crud.create_holder(s, "test", KEY, card, name, f"ID{card}")
        s.commit()
    return tokens


def add_result(db: Database, card: str, outcome: str, device: str = "city-reg-1", site: str = "city-hospital",
               at: datetime | None = None, purpose: str = "registration", quality: int | None = 70,
               delegate_id: str | None = None, operator: str | None = "op-7",
               detail: str | None = None) -> uuid.UUID:
    rid = uuid.uuid4()
    at = at or datetime.now(UTC)
    with db.session() as s:
        s.add(VerificationRecord(result_id=rid, device_id=device, site_id=site, card_number=card, outcome=outcome,
                                 purpose=purpose, captured_at=at, received_at=at, score=0.1, threshold=0.05,
                                 attempts=1, quality=quality, delegate_id=delegate_id, operator_id=operator,
                                 detail=detail))
        if outcome == "no_match":
            s.add(Alert(kind="no_match", result_id=rid, card_number=card, device_id=device, site_id=site,
                        card_retained=True, raised_at=at, status=AlertStatus.OPEN))
        s.commit()
    return rid


def admit(db: Database, card: str, hours_ago: float, interval: float = 4.0,
          discharged_hours_ago: float | None = None) -> int:
    now = datetime.now(UTC)
    with db.session() as s:
        stay = stays_crud.admit(s, "test", card, "city-hospital", now - timedelta(hours=hours_ago),
                                "ward 3", "12", interval)
        if discharged_hours_ago is not None:
            stays_crud.discharge(s, "test", stay.id, now - timedelta(hours=discharged_hours_ago))
        s.commit()
        return stay.id


def add_results(db: Database, rows: list[tuple[str, str, str, datetime]], card: str = "C-1001") -> None:
    """Many results at once: (device, site, outcome, captured_at) each, in one transaction."""
    with db.session() as s:
        s.add_all(VerificationRecord(result_id=uuid.uuid4(), device_id=dev, site_id=site, card_number=card,
                                     outcome=outcome, purpose="registration", captured_at=at, received_at=at,
                                     attempts=1, quality=70, operator_id="op-7") for dev, site, outcome, at in rows)
        s.commit()
