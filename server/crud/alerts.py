"""Alert handling by the insurance office: acknowledge, add notes, resolve.

Every note is its own row (who, when, what) and is never overwritten, so the acknowledgement's
note survives the resolution. Each note's digest goes into the audit log ("alert.note", entity
"alert_note"); `fpverify server audit verify` re-checks them (server/audit.py, KEPT), so an edited,
deleted or smuggled-in note is found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.i18n import N_
from fpverify.server import audit
from fpverify.server.crud.errors import Conflict, Invalid, NotFound
from fpverify.server.models import Alert, AlertNote, AlertStatus, utcnow

NOTE_ENTITY = "alert_note"  # an entry of audit.KEPT


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
        raise NotFound(N_("no such alert"))
    return a


def notes_of(s: Session, alert_ids: Iterable[int]) -> dict[int, list[AlertNote]]:
    """Each alert's notes, oldest first."""
    ids = list(set(alert_ids))
    out: dict[int, list[AlertNote]] = defaultdict(list)
    for i in range(0, len(ids), 500):
        q = select(AlertNote).where(AlertNote.alert_id.in_(ids[i:i + 500])).order_by(AlertNote.id)
        for n in s.scalars(q):
            out[n.alert_id].append(n)
    return out


def _add_note(s: Session, actor: str, a: Alert, kind: str, text: str) -> AlertNote:
    note = AlertNote(alert_id=a.id, at=utcnow(), author=actor, kind=kind, text=text)
    s.add(note)
    s.flush()
    audit.record(s, actor, "alert.note", NOTE_ENTITY, note.id, None, note, note=f"alert={a.id}; {kind}")
    a.comment = text
    return note


def acknowledge_alert(s: Session, actor: str, alert_id: int, comment: str | None = None) -> Alert:
    a = get_alert(s, alert_id)
    if a.status != AlertStatus.OPEN:
        raise Conflict(N_(N_("alert is resolved")) if a.status == AlertStatus.RESOLVED else N_("alert is already acknowledged"))
    before = audit.snapshot(a)
    a.status = AlertStatus.ACKNOWLEDGED
    a.acknowledged_by = actor
    a.acknowledged_at = utcnow()
    if comment and comment.strip():
        _add_note(s, actor, a, "acknowledge", comment.strip())
    audit.record(s, actor, "alert.acknowledge", "alert", a.id, before, a)
    return a


def add_note(s: Session, actor: str, alert_id: int, text: str) -> AlertNote:
    """A note while the alert is handled (a call made, the office informed)."""
    a = get_alert(s, alert_id)
    if not text.strip():
        raise Invalid(N_("a note needs text"))
    if a.status == AlertStatus.RESOLVED:
        raise Conflict(N_("alert is resolved"))
    return _add_note(s, actor, a, "note", text.strip())


def resolve_alert(s: Session, actor: str, alert_id: int, comment: str) -> Alert:
    a = get_alert(s, alert_id)
    if a.status == AlertStatus.RESOLVED:
        raise Conflict(N_("alert is resolved"))
    if not comment.strip():
        raise Invalid(N_("a resolution needs a comment"))
    before = audit.snapshot(a)
    now = utcnow()
    if a.acknowledged_at is None:
        a.acknowledged_by, a.acknowledged_at = actor, now
    a.status = AlertStatus.RESOLVED
    a.resolved_by = actor
    a.resolved_at = now
    _add_note(s, actor, a, "resolve", comment.strip())
    audit.record(s, actor, "alert.resolve", "alert", a.id, before, a)
    return a
