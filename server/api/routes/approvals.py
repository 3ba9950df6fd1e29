"""Four-eyes special operations: on cards and templates (supervisors request), on accounts and
device feed tokens (sysadmins request through /users and /devices); a supervisor other than the
requester approves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fpverify.server import schemas
from fpverify.server.api.deps import IntId, SessionDep, Supervisor, require
from fpverify.server.crud import approvals as crud
from fpverify.server.models import Approval, ApprovalAction, ApprovalStatus, Role, User

router = APIRouter(prefix="/approvals", tags=["approvals"])
Reader = Annotated[User, Depends(require(Role.SUPERVISOR, Role.AUDITOR, Role.SYSADMIN))]


def out(s, a: Approval, secret: str | None = None) -> schemas.ApprovalOut:
    """`secret`: what the executing approval made, for this answer only (a device token or a
    one-time password)."""
    o = schemas.ApprovalOut.model_validate(a)
    o.approvals = len(set(crud.approvers(s, a.id)))
    if a.action == ApprovalAction.DEVICE_TOKEN:
        o.device_token = secret
    else:
        o.one_time_password = secret
    return o


@router.get("", response_model=list[schemas.ApprovalOut])
def list_approvals(user: Reader, s: SessionDep, status: ApprovalStatus | None = None):
    """Sysadmins see the account and device-token operations only (the others name card holders)."""
    return [out(s, a) for a in crud.list_approvals(s, status, accounts_only=user.role == Role.SYSADMIN)]


@router.post("", response_model=schemas.ApprovalOut, status_code=201)
def request_approval(body: schemas.ApprovalIn, user: Supervisor, s: SessionDep):
    """Request a special operation on a card or template; it executes when a second, different
    supervisor approves. (Account operations: sysadmins, through /users.)"""
    a = crud.request(s, user, body.action, body.target, body.reason, body.param)
    s.commit()
    return out(s, a)


@router.post("/{approval_id}/approve", response_model=schemas.ApprovalOut)
def approve(approval_id: IntId, body: schemas.CommentIn, user: Supervisor, s: SessionDep):
    """Approve. For a new account or a password reset the answer carries the one-time password,
    once: hand it to the person; they must replace it at their first login. For a device's feed
    token (`device_token`) it carries the token, once: install it on the station."""
    a, secret = crud.approve(s, user, approval_id, body.comment)
    s.commit()
    return out(s, a, secret)


@router.post("/{approval_id}/reject", response_model=schemas.ApprovalOut)
def reject(approval_id: IntId, body: schemas.CommentIn, user: Supervisor, s: SessionDep):
    a = crud.reject(s, user, approval_id, body.comment)
    s.commit()
    return out(s, a)
