"""Four-eyes special operations: unblock a card, delete a template, override a duplicate."""

from __future__ import annotations

from fastapi import APIRouter

from fpverify.server import schemas
from fpverify.server.api.deps import IntId, OfficeReader, SessionDep, Supervisor
from fpverify.server.crud import approvals as crud
from fpverify.server.models import Approval, ApprovalStatus

router = APIRouter(prefix="/approvals", tags=["approvals"])


def _out(s, a: Approval) -> schemas.ApprovalOut:
    out = schemas.ApprovalOut.model_validate(a)
    out.approvals = len(set(crud.approvers(s, a.id)))
    return out


@router.get("", response_model=list[schemas.ApprovalOut])
def list_approvals(user: OfficeReader, s: SessionDep, status: ApprovalStatus | None = None):
    return [_out(s, a) for a in crud.list_approvals(s, status)]


@router.post("", response_model=schemas.ApprovalOut, status_code=201)
def request_approval(body: schemas.ApprovalIn, user: Supervisor, s: SessionDep):
    """Request a special operation; it executes when a second, different supervisor approves."""
    a = crud.request(s, user, body.action, body.target, body.reason)
    s.commit()
    return _out(s, a)


@router.post("/{approval_id}/approve", response_model=schemas.ApprovalOut)
def approve(approval_id: IntId, body: schemas.CommentIn, user: Supervisor, s: SessionDep):
    a = crud.approve(s, user, approval_id, body.comment)
    s.commit()
    return _out(s, a)


@router.post("/{approval_id}/reject", response_model=schemas.ApprovalOut)
def reject(approval_id: IntId, body: schemas.CommentIn, user: Supervisor, s: SessionDep):
    a = crud.reject(s, user, approval_id, body.comment)
    s.commit()
    return _out(s, a)
