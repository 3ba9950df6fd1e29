"""Staff accounts. Sysadmins freeze accounts directly; everything that gives power (a new account,
another role, a password reset, unfreezing) is filed as a special operation that a supervisor
must approve (POST /approvals/{id}/approve). Auditors may read the list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fpverify.server import schemas
from fpverify.server.api.deps import IntId, SessionDep, Sysadmin, require
from fpverify.server.api.routes.approvals import out
from fpverify.server.crud import approvals
from fpverify.server.crud import users as crud
from fpverify.server.models import ApprovalAction, Role, User

router = APIRouter(prefix="/users", tags=["users"])
_FILED = {202: {"description": "filed as a special operation; executes when a supervisor approves"}}


@router.get("", response_model=list[schemas.UserOut])
def list_users(user: Annotated[User, Depends(require(Role.SYSADMIN, Role.AUDITOR))], s: SessionDep):
    return crud.list_users(s)


def _file(s, user: User, action: str, target: str, reason: str, param: str | None = None) -> schemas.ApprovalOut:
    a = approvals.request(s, user, action, target, reason, param)
    s.commit()
    return out(s, a)


@router.post("", response_model=schemas.ApprovalOut, status_code=202, responses=_FILED)
def create_user(body: schemas.UserIn, user: Sysadmin, s: SessionDep):
    """Request a new account; the approving supervisor receives its one-time password."""
    return _file(s, user, ApprovalAction.CREATE_ACCOUNT, body.username, body.reason, body.role)


@router.post("/{user_id}/freeze", response_model=schemas.UserOut)
def freeze(user_id: IntId, user: Sysadmin, s: SessionDep):
    """Freeze an account (staff leaving or moving): login refused, tokens stop working. Direct:
    it takes power away."""
    u = crud.set_frozen(s, user.username, user_id, True)
    s.commit()
    return u


@router.post("/{user_id}/unfreeze", response_model=schemas.ApprovalOut, status_code=202, responses=_FILED)
def unfreeze(user_id: IntId, body: schemas.ReasonIn, user: Sysadmin, s: SessionDep):
    return _file(s, user, ApprovalAction.UNFREEZE_ACCOUNT, str(user_id), body.reason)


@router.post("/{user_id}/password", response_model=schemas.ApprovalOut, status_code=202, responses=_FILED)
def reset_password(user_id: IntId, body: schemas.ReasonIn, user: Sysadmin, s: SessionDep):
    """Request a one-time password for another user (given to the approver, to hand over)."""
    return _file(s, user, ApprovalAction.RESET_PASSWORD, str(user_id), body.reason)


@router.post("/{user_id}/role", response_model=schemas.ApprovalOut, status_code=202, responses=_FILED)
def change_role(user_id: IntId, body: schemas.RoleIn, user: Sysadmin, s: SessionDep):
    return _file(s, user, ApprovalAction.SET_ROLE, str(user_id), body.reason, body.role)
