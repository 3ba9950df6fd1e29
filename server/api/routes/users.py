"""Staff accounts (sysadmin manages; auditors may read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fpverify.server import schemas
from fpverify.server.api.deps import IntId, SessionDep, Sysadmin, require
from fpverify.server.crud import users as crud
from fpverify.server.models import Role, User

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=list[schemas.UserOut])
def list_users(user: Annotated[User, Depends(require(Role.SYSADMIN, Role.AUDITOR))], s: SessionDep):
    return crud.list_users(s)


@router.post("", response_model=schemas.UserOut, status_code=201)
def create_user(body: schemas.UserIn, user: Sysadmin, s: SessionDep):
    u = crud.create_user(s, user.username, body.username, body.password, body.role)
    s.commit()
    return u


@router.post("/{user_id}/freeze", response_model=schemas.UserOut)
def freeze(user_id: IntId, user: Sysadmin, s: SessionDep):
    """Freeze an account (staff leaving or moving): login refused, tokens stop working."""
    u = crud.set_frozen(s, user.username, user_id, True)
    s.commit()
    return u


@router.post("/{user_id}/unfreeze", response_model=schemas.UserOut)
def unfreeze(user_id: IntId, user: Sysadmin, s: SessionDep):
    u = crud.set_frozen(s, user.username, user_id, False)
    s.commit()
    return u


@router.post("/{user_id}/password", response_model=schemas.UserOut)
def reset_password(user_id: IntId, body: schemas.PasswordIn, user: Sysadmin, s: SessionDep):
    u = crud.reset_password(s, user.username, user_id, body.password)
    s.commit()
    return u


@router.post("/{user_id}/role", response_model=schemas.UserOut)
def change_role(user_id: IntId, body: schemas.RoleIn, user: Sysadmin, s: SessionDep):
    u = crud.change_role(s, user.username, user_id, body.role)
    s.commit()
    return u
