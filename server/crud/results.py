"""Queries over verification results and dead letters. Alerts: crud/alerts.py."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fpverify.server.crud.errors import NotFound
from fpverify.server.models import DeadLetter, VerificationRecord


def list_results(s: Session, site_id: str | None = None, device_id: str | None = None, outcome: str | None = None,
                 card_number: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 limit: int = 100, offset: int = 0) -> list[VerificationRecord]:
    q = select(VerificationRecord)
    if site_id:
        q = q.where(VerificationRecord.site_id == site_id)
    if device_id:
        q = q.where(VerificationRecord.device_id == device_id)
    if outcome:
        q = q.where(VerificationRecord.outcome == outcome)
    if card_number:
        q = q.where(VerificationRecord.card_number == card_number)
    if since:
        q = q.where(VerificationRecord.captured_at >= since)
    if until:
        q = q.where(VerificationRecord.captured_at < until)
    q = q.order_by(VerificationRecord.captured_at.desc(), VerificationRecord.result_id).limit(limit).offset(offset)
    return list(s.scalars(q))


def count_results(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(VerificationRecord)) or 0)


def outcome_counts(s: Session, since: datetime | None = None) -> dict[str, int]:
    q = select(VerificationRecord.outcome, func.count()).group_by(VerificationRecord.outcome)
    if since:
        q = q.where(VerificationRecord.captured_at >= since)
    return dict(s.execute(q).all())


def get_result(s: Session, result_id: uuid.UUID) -> VerificationRecord:
    r = s.get(VerificationRecord, result_id)
    if r is None:
        raise NotFound("no such result")
    return r


def signature_status(r: VerificationRecord, checked_at_ingest: bool) -> str:
    """How far a stored result's signature can be trusted. With a CA folder the ingest verifies every
    signed result before storing it (server/trust/verify.py), so a stored signature is a verified one."""
    if r.signature is None:
        return "unsigned"
    return "verified" if checked_at_ingest else "not_checked"


def list_dead_letters(s: Session, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
    return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit).offset(offset)))
