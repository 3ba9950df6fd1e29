"""Hash-chained audit log: every write records actor, time, action, entity and digests of the
entity's state before and after. Each row's hash covers the previous row's hash, so editing a row,
deleting one, or cutting the newest rows breaks the chain; `verify()` names the first bad row.

Some rows are kept whole by digest (`KEPT`: alert notes, suspicion marks): their audit row's after-digest is
the row itself, and `verify()` re-checks every such row against it.

Writers serialise on the single `audit_head` row (UPDATE .. RETURNING takes its lock), so the
chain stays linear under concurrency on PostgreSQL and SQLite alike. Call `record()` inside the
same transaction as the change it describes: both commit or neither does.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from fpverify.server.models import AlertNote, AuditEntry, AuditHead, SuspicionMark, utcnow
from fpverify.server.models.audit import GENESIS

# entity name -> (model, the audit row's entity_id of a row) of rows the log keeps whole (each created
# with one audit row whose `after` is the row): verify() finds such a row edited, deleted, or present
# without its audit row.
KEPT = {"alert_note": (AlertNote, lambda note: str(note.id)),
        "suspicion": (SuspicionMark, SuspicionMark.audit_id)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def snapshot(obj: Any) -> dict[str, Any] | None:
    """Column values of an ORM object (or a plain dict) as JSON-able data."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    mapper = inspect(obj).mapper
    return {c.key: _jsonable(getattr(obj, c.key)) for c in mapper.column_attrs}


def digest(state: dict[str, Any] | None) -> str | None:
    if state is None:
        return None
    data = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def row_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, entity: str, entity_id: str,
             before: str | None, after: str | None, note: str | None) -> str:
    fields = [prev_hash, str(seq), at.isoformat(), actor, action, entity, entity_id, before or "", after or "",
              note or ""]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def record(session: Session, actor: str, action: str, entity: str, entity_id: Any,
           before: Any = None, after: Any = None, note: str | None = None) -> AuditEntry:
    """Append one audit row. `before`/`after` are ORM objects, dicts or snapshots (None: absent)."""
    before_d = digest(before if isinstance(before, dict) else snapshot(before))
    after_d = digest(after if isinstance(after, dict) else snapshot(after))
    session.flush()
    seq, prev = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one()
    at = utcnow()
    h = row_hash(prev, seq, at, actor, action, entity, str(entity_id), before_d, after_d, note)
    entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, entity=entity, entity_id=str(entity_id),
                       before_digest=before_d, after_digest=after_d, note=note, prev_hash=prev, hash=h)
    session.add(entry)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=h))
    return entry


@dataclasses.dataclass
class VerifyReport:
    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} rows"
        if self.bad_seq is None:
            return f"audit chain intact ({self.checked} rows) but a kept record is BROKEN: {self.problem}"
        return f"audit chain BROKEN at row seq={self.bad_seq}: {self.problem} ({self.checked} rows checked)"


def verify(session: Session) -> VerifyReport:
    """Walk the chain from the start; report the first row that was edited, deleted or inserted."""
    expected_seq = 1
    prev = GENESIS
    checked = 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000))
    for (e,) in rows:
        if e.seq != expected_seq:
            return VerifyReport(False, checked, expected_seq,
                                f"row {expected_seq} is missing (deleted); next present row is {e.seq}")
        if e.prev_hash != prev:
            return VerifyReport(False, checked, e.seq, "prev_hash does not match the previous row (edited or deleted)")
        h = row_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.entity, e.entity_id, e.before_digest,
                     e.after_digest, e.note)
        if h != e.hash:
            return VerifyReport(False, checked, e.seq, "row content does not match its hash (edited)")
        prev = e.hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditHead, 1)
    if head is None:
        return VerifyReport(False, checked, None, "audit head row is missing")
    if head.seq != checked or head.hash != prev:
        return VerifyReport(False, checked, checked + 1,
                            f"chain head says {head.seq} rows but {checked} are present (newest rows deleted)")
    for entity, (model, ident) in KEPT.items():
        problem = check_kept(session, entity, model, ident)
        if problem:
            return VerifyReport(False, checked, None, problem)
    return VerifyReport(True, checked)


def check_kept(session: Session, entity: str, model, ident) -> str | None:
    """Each row of `model` matches the digest of its audit row (entity_id `ident(row)`), and each
    audited row still exists."""
    audited = dict(session.execute(select(AuditEntry.entity_id, AuditEntry.after_digest)
                                   .where(AuditEntry.entity == entity, AuditEntry.before_digest.is_(None))).all())
    key = inspect(model).primary_key[0]
    for (row,) in session.execute(select(model).order_by(key).execution_options(yield_per=2000)):
        name = ident(row)
        want = audited.pop(name, None)
        if want is None:
            return f"{entity} {name} has no audit row (written outside the registry)"
        if digest(snapshot(row)) != want:
            return f"{entity} {name} does not match its audited digest (edited)"
    if audited:
        return f"{entity} {min(audited, key=lambda k: (len(k), k))} is audited but missing (deleted)"
    return None
