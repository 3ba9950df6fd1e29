"""Inpatient stays and the overdue bedside re-check list (挂床住院)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.crud import sites
from fpverify.server.crud.errors import Conflict, Invalid, NotFound
from fpverify.server.models import (
    AssignmentReason,
    CardHolder,
    InpatientStay,
    Site,
    VerificationRecord,
    utcnow,
)

# A bedside check counts when the patient themself was verified at the ward.
BEDSIDE_OK = ("match",)


def admit(s: Session, actor: str, card_number: str, site_id: str, admitted_at: datetime, ward: str | None,
          bed: str | None, recheck_interval_hours: float) -> InpatientStay:
    if s.get(CardHolder, card_number) is None:
        raise NotFound("no such card holder")
    if s.get(Site, site_id) is None:
        raise NotFound("no such site")
    if admitted_at.tzinfo is None:
        raise Invalid("admitted_at must carry a time zone")
    if not 0 < recheck_interval_hours <= 24 * 14:
        raise Invalid("recheck_interval_hours must be in (0, 336]")
    open_stay = s.scalar(select(InpatientStay).where(InpatientStay.card_number == card_number,
                                                     InpatientStay.discharged_at.is_(None)))
    if open_stay is not None:
        raise Conflict(f"card holder is already admitted (stay {open_stay.id})")
    stay = InpatientStay(card_number=card_number, site_id=site_id, ward=ward, bed=bed, admitted_at=admitted_at,
                         recheck_interval_hours=recheck_interval_hours, admitted_by=actor, created_at=utcnow())
    s.add(stay)
    s.flush()
    audit.record(s, actor, "stay.admit", "inpatient_stay", stay.id, None, stay)
    sites.assign(s, actor, card_number, site_id, AssignmentReason.ADMITTED)  # the site's stations get the holder
    return stay


def discharge(s: Session, actor: str, stay_id: int, discharged_at: datetime | None = None) -> InpatientStay:
    stay = s.get(InpatientStay, stay_id)
    if stay is None:
        raise NotFound("no such stay")
    if stay.discharged_at is not None:
        raise Conflict("already discharged")
    when = discharged_at or utcnow()
    if when.tzinfo is None:
        raise Invalid("discharged_at must carry a time zone")
    if when < stay.admitted_at:
        raise Invalid("discharge before admission")
    before = audit.snapshot(stay)
    stay.discharged_at = when
    audit.record(s, actor, "stay.discharge", "inpatient_stay", stay.id, before, stay)
    sites.discharged(s, actor, stay.card_number, stay.site_id, when)
    return stay


def list_stays(s: Session, site_id: str | None = None, current_only: bool = True) -> list[InpatientStay]:
    q = select(InpatientStay).order_by(InpatientStay.admitted_at.desc())
    if site_id:
        q = q.where(InpatientStay.site_id == site_id)
    if current_only:
        q = q.where(InpatientStay.discharged_at.is_(None))
    return list(s.scalars(q.limit(1000)))


@dataclass
class Overdue:
    stay: InpatientStay
    last_check: datetime | None
    due_at: datetime
    hours_overdue: float


def overdue(s: Session, now: datetime | None = None, site_id: str | None = None) -> list[Overdue]:
    """Current stays whose last bedside match (at the stay's site, since admission) is older than
    the interval: these patients may be registered but absent."""
    now = now or utcnow()
    last = (
        select(func.max(VerificationRecord.captured_at))
        .where(VerificationRecord.card_number == InpatientStay.card_number,
               VerificationRecord.site_id == InpatientStay.site_id,
               VerificationRecord.purpose == "bedside",
               VerificationRecord.outcome.in_(BEDSIDE_OK),
               VerificationRecord.captured_at >= InpatientStay.admitted_at)
        .correlate(InpatientStay).scalar_subquery()
    )
    q = select(InpatientStay, last).where(InpatientStay.discharged_at.is_(None))
    if site_id:
        q = q.where(InpatientStay.site_id == site_id)
    out = []
    for stay, last_check in s.execute(q):
        if last_check is not None and last_check.tzinfo is None:  # raw aggregate on SQLite
            last_check = last_check.replace(tzinfo=UTC)
        due = (last_check or stay.admitted_at) + timedelta(hours=stay.recheck_interval_hours)
        if due < now:
            out.append(Overdue(stay, last_check, due, (now - due).total_seconds() / 3600))
    out.sort(key=lambda o: o.due_at)
    return out
