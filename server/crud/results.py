"""Queries over verification results, dead letters and alerts; alert handling."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.crud.errors import Conflict, NotFound
from fpverify.server.models import Alert, AlertStatus, DeadLetter, VerificationRecord, utcnow


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


def list_dead_letters(s: Session, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
    return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit).offset(offset)))


def list_alerts(s: Session, status: str | None = None, site_id: str | None = None, limit: int = 100,
                offset: int = 0) -> list[Alert]:
    q = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc())
    if status:
        q = q.where(Alert.status == status)
    if site_id:
        q = q.where(Alert.site_id == site_id)
    return list(s.scalars(q.limit(limit).offset(offset)))


def get_alert(s: Session, alert_id: int) -> Alert:
    a = s.get(Alert, alert_id)
    if a is None:
        raise NotFound("no such alert")
    return a


def acknowledge_alert(s: Session, actor: str, alert_id: int, comment: str | None = None) -> Alert:
    a = get_alert(s, alert_id)
    if a.status != AlertStatus.OPEN:
        raise Conflict(f"alert is {a.status}")
    before = audit.snapshot(a)
    a.status = AlertStatus.ACKNOWLEDGED
    a.acknowledged_by = actor
    a.acknowledged_at = utcnow()
    if comment:
        a.comment = comment
    audit.record(s, actor, "alert.acknowledge", "alert", a.id, before, a)
    return a


def resolve_alert(s: Session, actor: str, alert_id: int, comment: str) -> Alert:
    a = get_alert(s, alert_id)
    if a.status == AlertStatus.RESOLVED:
        raise Conflict("alert is resolved")
    before = audit.snapshot(a)
    now = utcnow()
    if a.acknowledged_at is None:
        a.acknowledged_by, a.acknowledged_at = actor, now
    a.status = AlertStatus.RESOLVED
    a.resolved_by = actor
    a.resolved_at = now
    a.comment = comment
    audit.record(s, actor, "alert.resolve", "alert", a.id, before, a)
    return a
