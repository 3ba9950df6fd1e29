"""The audit log (auditors) and its chain check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from fpverify.server import audit, schemas
from fpverify.server.api.deps import Auditor, SessionDep, Version, require
from fpverify.server.models import AuditEntry, Role, User

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[schemas.AuditOut])
def list_audit(user: Auditor, s: SessionDep, after_seq: Version = 0,
               limit: int = Query(default=200, ge=1, le=5000), entity: str | None = Query(default=None, max_length=64),
               actor: str | None = Query(default=None, max_length=80)):
    q = select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
    if entity:
        q = q.where(AuditEntry.entity == entity)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    return list(s.scalars(q))


@router.get("/verify", response_model=schemas.AuditVerifyOut)
def verify(user: Annotated[User, Depends(require(Role.AUDITOR, Role.SYSADMIN))], s: SessionDep):
    """Walk the hash chain; names the first edited, deleted or inserted row."""
    r = audit.verify(s)
    return schemas.AuditVerifyOut(ok=r.ok, checked=r.checked, bad_seq=r.bad_seq, problem=r.problem)
