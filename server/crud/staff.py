"""Staff credentials (a clerk's sign-in at the station): enrollment, approval, revocation, the
per-device staff feed.

- A sysadmin files the enrollment (templates captured with the clerk present, the PIN the clerk
  typed); it is stored `pending` with a `staff_credential` approval. A supervisor approves it (the
  four-eyes rule of server/crud/approvals.py: the requester never decides) and only then does it
  reach the stations. A credential is a login: one person alone must not be able to make one.
- The PIN is hashed at once (Argon2id, server/core/security.py); the plain PIN is never stored,
  logged or audited. Template bytes are never audited either (counts and ids only).
- Revoking is direct (it takes power away), like freezing an account; a newer approved credential
  replaces the older one. Both purge the old templates.
- The staff feed carries the site's clerks (roles in STAFF_ROLES) with an active credential: user
  name, active/frozen, templates, PIN hash. A frozen account is listed without either, so the
  station ends its shift and holds nothing it could sign in with.
- Any change that alters a station's list (a credential here, a freeze or a role change in
  crud/users.py) calls `feed.notify_stations`, so the notifier publishes TemplatesChanged after the
  commit; stations then pull both feeds.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.core.security import hash_password
from fpverify.server.crud.errors import Conflict, Denied, Invalid, NotFound
from fpverify.server.ingest import feed
from fpverify.server.models import (
    CredentialStatus,
    Role,
    Site,
    StaffCredential,
    StaffTemplate,
    User,
    utcnow,
)

STAFF_ROLES = frozenset({Role.OPERATOR, Role.ENROLLER})  # who works at a desk and signs in there
PIN_RE = re.compile(r"^[0-9]{6,12}$")


def check_pin(pin: str) -> None:
    if not PIN_RE.match(pin):
        raise Invalid("PIN: 6 to 12 digits")
    digits = [int(c) for c in pin]
    steps = {b - a for a, b in zip(digits, digits[1:], strict=False)}
    if len(set(digits)) == 1 or steps in ({1}, {-1}):
        raise Invalid("PIN: not one repeated digit nor a run like 123456")


def _public(c: StaffCredential, templates: int | None = None) -> dict:
    """What the audit digests of a credential: never the PIN hash, never template bytes."""
    return {"id": c.id, "user_id": c.user_id, "site_id": c.site_id, "status": c.status,
            "has_pin": c.pin_hash is not None, "templates": templates, "requested_by": c.requested_by}


def _staff_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.role not in STAFF_ROLES:
        raise Invalid(f"only accounts of role {' or '.join(sorted(STAFF_ROLES))} sign in at a station")
    if user.frozen:
        raise Conflict("the account is frozen")
    return user


def file_enrollment(s: Session, actor: User, user_id: int, site_id: str, fingers: list[wire.EnrolledFinger],
                    pin: str | None, validate_template=None) -> StaffCredential:
    """Store a pending credential (the caller files its approval in the same transaction)."""
    user = _staff_user(s, user_id)
    if user.username == actor.username:
        raise Denied("nobody enrolls their own sign-in")
    if s.get(Site, site_id) is None:
        raise NotFound(f"no site {site_id!r}")
    if pin is not None:
        check_pin(pin)
    if not fingers:
        raise Invalid("at least one finger")
    if len({f.finger for f in fingers}) != len(fingers):
        raise Invalid("each finger position appears once")
    if sum(len(f.templates) for f in fingers) > 30:
        raise Invalid("at most 30 templates")
    if validate_template is not None:
        for f in fingers:
            for t in f.templates:
                try:
                    validate_template(t)
                except ValueError as exc:
                    raise Invalid(f"finger {f.finger}: not a valid template ({exc})") from exc
    c = StaffCredential(id=str(uuid.uuid4()), user_id=user.id, site_id=site_id,
                        pin_hash=hash_password(pin) if pin is not None else None,
                        status=CredentialStatus.PENDING, requested_by=actor.username, created_at=utcnow())
    s.add(c)
    n = 0
    for f in fingers:
        for t, q in zip(f.templates, f.qualities, strict=True):
            s.add(StaffTemplate(id=f"st-{uuid.uuid4().hex}", credential_id=c.id, finger=f.finger, quality=q, data=t))
            n += 1
    s.flush()
    audit.record(s, actor.username, "staff.enroll", "staff_credential", c.id, None, _public(c, n),
                 note=f"user={user.username}; site={site_id}")
    feed.notify_stations(s)
    return c


def check_target(s: Session, credential_id: str) -> StaffCredential:
    """A pending credential whose account may still sign in (checked at the request and at execution)."""
    c = s.get(StaffCredential, credential_id)
    if c is None:
        raise NotFound("no such staff credential")
    if c.status != CredentialStatus.PENDING:
        raise Conflict(f"staff credential is {c.status}")
    _staff_user(s, c.user_id)
    return c


def _end(s: Session, actor: str, c: StaffCredential, status: CredentialStatus, action: str, note: str) -> None:
    before = _public(c)
    for t in s.scalars(select(StaffTemplate).where(StaffTemplate.credential_id == c.id)):
        s.delete(t)  # purged, not kept as history: biometric data of someone who no longer uses it
    c.status = status
    c.decided_at = utcnow()
    audit.record(s, actor, action, "staff_credential", c.id, before, _public(c), note=note)
    feed.notify_stations(s)


def activate(s: Session, actor: str, credential_id: str) -> StaffCredential:
    """The approved enrollment: active at its site; the account's earlier credential ends."""
    c = check_target(s, credential_id)
    for old in s.scalars(select(StaffCredential).where(StaffCredential.user_id == c.user_id,
                                                       StaffCredential.status == CredentialStatus.ACTIVE)):
        _end(s, actor, old, CredentialStatus.REVOKED, "staff.replace", f"replaced by {c.id}")
    before = _public(c)
    c.status = CredentialStatus.ACTIVE
    c.decided_at = utcnow()
    audit.record(s, actor, "staff.activate", "staff_credential", c.id, before, _public(c))
    feed.notify_stations(s)
    return c


def reject(s: Session, actor: str, credential_id: str) -> None:
    c = s.get(StaffCredential, credential_id)
    if c is not None and c.status == CredentialStatus.PENDING:
        _end(s, actor, c, CredentialStatus.REJECTED, "staff.reject", "approval rejected")


def revoke(s: Session, actor: str, user_id: int) -> list[StaffCredential]:
    """End every active or pending credential of the account (direct: it takes power away)."""
    ended = list(s.scalars(select(StaffCredential).where(
        StaffCredential.user_id == user_id,
        StaffCredential.status.in_((CredentialStatus.ACTIVE, CredentialStatus.PENDING)))))
    if not ended:
        raise NotFound("the account has no staff credential")
    for c in ended:
        _end(s, actor, c, CredentialStatus.REVOKED, "staff.revoke", "revoked")
    return ended


def list_credentials(s: Session, site_id: str | None = None) -> list[dict]:
    q = (select(StaffCredential, User.username).join(User, User.id == StaffCredential.user_id)
         .order_by(StaffCredential.created_at.desc()))
    if site_id:
        q = q.where(StaffCredential.site_id == site_id)
    out = []
    for c, username in s.execute(q.limit(1000)):
        fingers = sorted(set(s.scalars(select(StaffTemplate.finger).where(StaffTemplate.credential_id == c.id))))
        out.append({"id": c.id, "user_id": c.user_id, "username": username, "site_id": c.site_id,
                    "status": c.status, "has_pin": c.pin_hash is not None, "fingers": fingers,
                    "requested_by": c.requested_by, "created_at": c.created_at, "decided_at": c.decided_at})
    return out


def build_feed(s: Session, site_id: str) -> wire.StaffFeed:
    """The site's clerks as the station holds them (a snapshot)."""
    rows = s.execute(select(StaffCredential, User).join(User, User.id == StaffCredential.user_id)
                     .where(StaffCredential.site_id == site_id, StaffCredential.status == CredentialStatus.ACTIVE,
                            User.role.in_(tuple(STAFF_ROLES)))
                     .order_by(User.username))
    staff = []
    for c, user in rows:
        if user.frozen:
            staff.append(wire.StaffMember(operator_id=user.username, status="frozen"))
            continue
        templates = [wire.StaffTemplate(template_id=t.id, finger=t.finger, quality=t.quality, template=t.data)
                     for t in s.scalars(select(StaffTemplate).where(StaffTemplate.credential_id == c.id)
                                        .order_by(StaffTemplate.id))]
        staff.append(wire.StaffMember(operator_id=user.username, status="active", pin_hash=c.pin_hash,
                                      templates=templates))
    return wire.StaffFeed(site_id=site_id, generated_at=datetime.now(UTC), staff=staff)
