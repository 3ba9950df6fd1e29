"""Marking a suspicion point (疑点) handled: a supervisor's note, kept and audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.i18n import N_
from fpverify.server import audit
from fpverify.server.crud.errors import Conflict, Invalid
from fpverify.server.models import SUSPICION_KINDS, SuspicionMark

MARK_ENTITY = "suspicion"  # an entry of audit.KEPT: audit verify re-checks every mark


def mark_handled(s: Session, actor: str, kind: str, key: str, note: str) -> SuspicionMark:
    if kind not in SUSPICION_KINDS:
        raise Invalid(N_("unknown kind of suspicion point {kind}"), kind=repr(kind[:20]))
    key, note = key.strip(), note.strip()
    if not key or len(key) > 200:
        raise Invalid(N_("the suspicion point is not named"))
    if not note:
        raise Invalid(N_("marking a point handled needs a note"))
    if s.scalar(select(SuspicionMark.id).where(SuspicionMark.kind == kind, SuspicionMark.key == key)) is not None:
        raise Conflict(N_("this point is already marked handled"))
    mark = SuspicionMark(kind=kind, key=key, handled_by=actor, note=note[:2000])
    s.add(mark)
    s.flush()
    audit.record(s, actor, "suspicion.handle", MARK_ENTITY, mark.audit_id(), None, mark)
    return mark


def marks(s: Session) -> dict[tuple[str, str], SuspicionMark]:
    return {(m.kind, m.key): m for m in s.scalars(select(SuspicionMark))}
