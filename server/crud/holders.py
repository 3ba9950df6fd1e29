"""Card holders, biometric consents, delegates, templates and enrollment uploads."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server import audit, cohort
from fpverify.server.core.security import national_id_hmac
from fpverify.server.crud import sites
from fpverify.server.crud.errors import Conflict, Invalid, NotFound
from fpverify.server.dedup import DuplicateHit
from fpverify.server.ingest import feed
from fpverify.server.models import (
    Approval,
    ApprovalAction,
    ApprovalStatus,
    AssignmentReason,
    CardHolder,
    Consent,
    Delegate,
    Device,
    Enrollment,
    EnrollmentStatus,
    HolderStatus,
    Template,
    TemplateStatus,
    utcnow,
)

CARD_RE = re.compile(r"^[A-Za-z0-9-]{4,32}$")  # same as edge.wire.CardNumber

DuplicateChecker = Callable[[Session, str, list[bytes]], DuplicateHit | None]


# ---- card holders -------------------------------------------------------------------------------

def create_holder(s: Session, actor: str, key: str, card_number: str, name: str, national_id: str) -> CardHolder:
    if not CARD_RE.match(card_number):
        raise Invalid("card number: 4-32 letters, digits or -")
    if not name.strip() or not national_id.strip():
        raise Invalid("name and national id are required")
    if s.get(CardHolder, card_number) is not None:
        raise Conflict(f"card {card_number} is registered")
    now = utcnow()
    holder = CardHolder(card_number=card_number, name=name.strip(), national_id_hmac=national_id_hmac(key, national_id),
                        status=HolderStatus.ACTIVE, created_at=now, updated_at=now)
    s.add(holder)
    s.flush()
    audit.record(s, actor, "holder.create", "card_holder", card_number, None, holder)
    return holder


def get_holder(s: Session, card_number: str) -> CardHolder:
    holder = s.get(CardHolder, card_number)
    if holder is None:
        raise NotFound("no such card holder")
    return holder


def list_holders(s: Session, q: str | None = None, status: str | None = None, limit: int = 100,
                 offset: int = 0) -> list[CardHolder]:
    query = select(CardHolder).order_by(CardHolder.card_number)
    if q:
        like = f"%{q}%"
        query = query.where(or_(CardHolder.card_number.like(like), CardHolder.name.like(like)))
    if status:
        query = query.where(CardHolder.status == status)
    return list(s.scalars(query.limit(limit).offset(offset)))


def find_by_national_id(s: Session, key: str, national_id: str) -> list[CardHolder]:
    return list(s.scalars(select(CardHolder).where(CardHolder.national_id_hmac == national_id_hmac(key, national_id))))


def set_status(s: Session, actor: str, card_number: str, status: str, note: str | None = None) -> CardHolder:
    """Block or unblock a card and tell the stations. (Unblocking goes through approvals.)"""
    holder = get_holder(s, card_number)
    if holder.status == status:
        return holder
    before = audit.snapshot(holder)
    holder.status = status
    holder.updated_at = utcnow()
    feed.append_holder(s, "card", card_number, status=status)
    audit.record(s, actor, f"holder.{'block' if status == HolderStatus.BLOCKED else 'unblock'}", "card_holder",
                 card_number, before, holder, note=note)
    return holder


# ---- consents -----------------------------------------------------------------------------------

def active_consent(s: Session, card_number: str) -> Consent | None:
    return s.scalar(select(Consent).where(Consent.card_number == card_number, Consent.withdrawn_at.is_(None))
                    .order_by(Consent.id.desc()).limit(1))


def list_consents(s: Session, card_number: str) -> list[Consent]:
    get_holder(s, card_number)
    return list(s.scalars(select(Consent).where(Consent.card_number == card_number).order_by(Consent.id)))


def record_consent(s: Session, actor: str, card_number: str, given_at: datetime, scope: str,
                   witnessed_by: str) -> Consent:
    get_holder(s, card_number)
    if given_at.tzinfo is None:
        raise Invalid("given_at must carry a time zone")
    if given_at > utcnow():
        raise Invalid("given_at is in the future")
    if active_consent(s, card_number) is not None:
        raise Conflict("an active consent is on file; withdraw it first")
    c = Consent(card_number=card_number, given_at=given_at, scope=scope, witnessed_by=witnessed_by,
                recorded_by=actor, recorded_at=utcnow())
    s.add(c)
    s.flush()
    audit.record(s, actor, "consent.record", "consent", c.id, None, c)
    return c


def withdraw_consent(s: Session, actor: str, card_number: str) -> tuple[Consent, int]:
    """PIPL withdrawal: purge every template of the card (holder and delegates) and tell stations."""
    c = active_consent(s, card_number)
    if c is None:
        raise Conflict("no active consent to withdraw")
    before = audit.snapshot(c)
    c.withdrawn_at = utcnow()
    c.withdrawn_by = actor
    audit.record(s, actor, "consent.withdraw", "consent", c.id, before, c)
    purged = 0
    for t in s.scalars(select(Template).where(Template.card_number == card_number, Template.data.is_not(None))):
        _purge_template(s, actor, t, "consent withdrawn")
        purged += 1
    for e in s.scalars(select(Enrollment).where(Enrollment.card_number == card_number,
                                                Enrollment.status == EnrollmentStatus.PENDING_REVIEW)):
        e.status = EnrollmentStatus.REJECTED
        audit.record(s, actor, "enrollment.reject", "enrollment", e.id, note="consent withdrawn")
    return c, purged


# ---- delegates ----------------------------------------------------------------------------------

def add_delegate(s: Session, actor: str, key: str, card_number: str, name: str, national_id: str,
                 valid_from: datetime, valid_until: datetime, relation: str | None = None) -> Delegate:
    get_holder(s, card_number)
    if valid_from.tzinfo is None or valid_until.tzinfo is None:
        raise Invalid("validity times must carry a time zone")
    if valid_until <= valid_from:
        raise Invalid("valid_until must be after valid_from")
    d = Delegate(id=uuid.uuid4().hex[:16], card_number=card_number, name=name, relation=relation,
                 national_id_hmac=national_id_hmac(key, national_id), valid_from=valid_from,
                 valid_until=valid_until, created_at=utcnow())
    s.add(d)
    s.flush()
    audit.record(s, actor, "delegate.create", "delegate", d.id, None, d)
    return d


def list_delegates(s: Session, card_number: str) -> list[Delegate]:
    get_holder(s, card_number)
    return list(s.scalars(select(Delegate).where(Delegate.card_number == card_number).order_by(Delegate.created_at)))


# ---- templates ----------------------------------------------------------------------------------

def list_templates(s: Session, card_number: str) -> list[Template]:
    get_holder(s, card_number)
    return list(s.scalars(select(Template).where(Template.card_number == card_number).order_by(Template.enrolled_at)))


def _purge_template(s: Session, actor: str, t: Template, reason: str) -> None:
    before = audit.snapshot(t)
    was_active = t.status == TemplateStatus.ACTIVE
    t.data = None
    t.status = TemplateStatus.REVOKED
    t.revoked_at = utcnow()
    t.revoked_reason = reason
    if was_active:
        feed.append_holder(s, "revoke", t.card_number, template_id=t.id)
    audit.record(s, actor, "template.revoke", "template", t.id, before, t, note=reason)


def revoke_template(s: Session, actor: str, template_id: str, reason: str) -> Template:
    t = s.get(Template, template_id)
    if t is None:
        raise NotFound("no such template")
    if t.data is None:
        raise Conflict("template already revoked")
    _purge_template(s, actor, t, reason)
    return t


def template_counts(s: Session) -> dict[str, int]:
    return dict(s.execute(select(Template.status, func.count()).group_by(Template.status)).all())


# ---- enrollment ---------------------------------------------------------------------------------

def enrollment_response(s: Session, e: Enrollment) -> dict:
    tids = list(s.scalars(select(Template.id).where(Template.enrollment_id == e.id).order_by(Template.id)))
    return {"status": e.status, "card_number": e.card_number, "template_ids": tids,
            "feed_version": feed.current_version(s), "enrollment_id": e.id}


def enroll(s: Session, actor: str, upload: wire.EnrollmentUpload, check_duplicate: DuplicateChecker,
           validate_template: Callable[[bytes], None] | None = None, cohort_size: int = 0) -> dict:
    """Store an upload from a station. Idempotent by enrollment_id. A 1:N hit on another holder
    holds the templates (pending) and opens an override_duplicate approval for two supervisors.
    Each template gets its impostor-cohort statistics (server/cohort.py) against `cohort_size`
    other holders' templates (the route passes settings.cohort_size; 0: none)."""
    eid = str(upload.enrollment_id)
    existing = s.get(Enrollment, eid)
    if existing is not None:
        if existing.card_number != upload.card_number:
            raise Conflict("enrollment id reused for another card")
        return enrollment_response(s, existing)
    holder = s.get(CardHolder, upload.card_number)
    if holder is None:
        raise Conflict("card holder is not registered (register the holder and record the consent first)")
    consent = active_consent(s, upload.card_number)
    if consent is None:
        raise Conflict("no biometric consent on file for this card")
    if upload.role == wire.HolderRole.DELEGATE:
        d = s.get(Delegate, upload.delegate_id) if upload.delegate_id else None
        if d is None or d.card_number != upload.card_number:
            raise Invalid("delegate enrollment needs a delegate_id registered for this card")
        if d.valid_until <= utcnow():
            raise Invalid("the delegate's authorisation has expired")
    elif upload.delegate_id:
        raise Invalid("delegate_id is only for role=delegate")
    for f in upload.fingers:
        if len(f.qualities) != len(f.templates):
            raise Invalid(f"finger {f.finger}: one quality per template expected")
    device = s.get(Device, upload.device_id)
    probes = [t for f in upload.fingers for t in f.templates]
    if validate_template is not None:
        for t in probes:
            validate_template(t)
    hit = check_duplicate(s, upload.card_number, probes) if upload.role == wire.HolderRole.HOLDER else None
    status = EnrollmentStatus.PENDING_REVIEW if hit else EnrollmentStatus.ENROLLED
    size = cohort_size
    stats = iter(cohort.statistics(s, upload.card_number, probes, size))
    e = Enrollment(id=eid, card_number=upload.card_number, role=upload.role, delegate_id=upload.delegate_id,
                   device_id=upload.device_id, site_id=device.site_id if device else None,
                   operator_id=upload.operator_id, uploaded_by=actor, consent_id=consent.id, status=status,
                   duplicate_of=hit.card_number if hit else None, duplicate_score=hit.score if hit else None,
                   created_at=utcnow())
    s.add(e)
    s.flush()
    audit.record(s, actor, "enrollment.create", "enrollment", eid, None, e,
                 note=f"status={status}" + (" duplicate" if hit else ""))
    if e.site_id and not hit:
        sites.assign(s, actor, upload.card_number, e.site_id, AssignmentReason.ENROLLED)
    for f in upload.fingers:
        for data, q in zip(f.templates, f.qualities, strict=True):
            c = next(stats)
            t = Template(id=uuid.uuid4().hex, card_number=upload.card_number, enrollment_id=eid, role=upload.role,
                         delegate_id=upload.delegate_id, finger=f.finger, quality=q, data=data,
                         status=TemplateStatus.PENDING if hit else TemplateStatus.ACTIVE,
                         enrolled_by=upload.operator_id, device_id=upload.device_id, site_id=e.site_id,
                         enrolled_at=utcnow(), cohort_mean=c.mean if c else None, cohort_sd=c.sd if c else None)
            s.add(t)
            s.flush()
            audit.record(s, actor, "template.create", "template", t.id, None, t)
            if not hit:
                feed.append_holder(s, "add", t.card_number, template_id=t.id)
    if hit:
        a = Approval(action=ApprovalAction.OVERRIDE_DUPLICATE, target=eid, requested_by="system",
                     reason=f"1:N duplicate check matched card {hit.card_number}", status=ApprovalStatus.PENDING,
                     requested_at=utcnow())
        s.add(a)
        s.flush()
        audit.record(s, "system", "approval.request", "approval", a.id, None, a, note=a.action)
    return enrollment_response(s, e)


def activate_enrollment(s: Session, actor: str, enrollment_id: str) -> Enrollment:
    e = s.get(Enrollment, enrollment_id)
    if e is None:
        raise NotFound("no such enrollment")
    if e.status != EnrollmentStatus.PENDING_REVIEW:
        raise Conflict(f"enrollment is {e.status}")
    before = audit.snapshot(e)
    e.status = EnrollmentStatus.ENROLLED
    audit.record(s, actor, "enrollment.approve", "enrollment", e.id, before, e)
    if e.site_id:
        sites.assign(s, actor, e.card_number, e.site_id, AssignmentReason.ENROLLED)
    for t in s.scalars(select(Template).where(Template.enrollment_id == e.id, Template.status == TemplateStatus.PENDING)):
        tb = audit.snapshot(t)
        t.status = TemplateStatus.ACTIVE
        feed.append_holder(s, "add", t.card_number, template_id=t.id)
        audit.record(s, actor, "template.activate", "template", t.id, tb, t)
    return e


def reject_enrollment(s: Session, actor: str, enrollment_id: str) -> Enrollment:
    e = s.get(Enrollment, enrollment_id)
    if e is None:
        raise NotFound("no such enrollment")
    before = audit.snapshot(e)
    e.status = EnrollmentStatus.REJECTED
    audit.record(s, actor, "enrollment.reject", "enrollment", e.id, before, e)
    for t in s.scalars(select(Template).where(Template.enrollment_id == e.id, Template.data.is_not(None))):
        _purge_template(s, actor, t, "duplicate rejected")
    return e
