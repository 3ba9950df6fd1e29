"""Request dependencies: database session, settings, and who is calling (staff user or device).

`require(*roles)` is the one place a route states who may call it; anonymous callers get 401,
authenticated callers of another role 403. Frozen users and revoked/expired tokens are anonymous.
The bearer header is only the transport: tokens and role groups are server/core/auth.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from fpverify.server.core import auth
from fpverify.server.core.auth import ALL, OFFICE, PERSONAL_READ
from fpverify.server.core.config import Settings
from fpverify.server.crud import devices as devices_crud
from fpverify.server.models import Device, Role, User

bearer = HTTPBearer(auto_error=False, description="staff token from /auth/login, or a device token")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.sessionmaker() as s:
        yield s


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def current_user(s: SessionDep, creds: Creds) -> User:
    if creds is None or not creds.credentials:
        raise _unauthorized()
    user = auth.user_for_token(s, creds.credentials)
    if user is None:
        raise _unauthorized("invalid, expired or revoked token, or frozen account")
    return user


def require(*roles: Role):
    """Dependency factory: the caller must be a staff user with one of `roles`."""
    allowed = frozenset(roles)

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this")
        return user

    check.allowed_roles = allowed  # read by docs and the role matrix test
    return check


def current_device(s: SessionDep, creds: Creds) -> Device:
    if creds is None or not creds.credentials:
        raise _unauthorized()
    dev = devices_crud.device_for_token(s, creds.credentials)
    if dev is None:
        raise _unauthorized("invalid device token or device disabled")
    return dev


AnyUser = Annotated[User, Depends(current_user)]
DeviceDep = Annotated[Device, Depends(current_device)]

Sysadmin = Annotated[User, Depends(require(Role.SYSADMIN))]
Enroller = Annotated[User, Depends(require(Role.ENROLLER))]
Supervisor = Annotated[User, Depends(require(Role.SUPERVISOR))]
Auditor = Annotated[User, Depends(require(Role.AUDITOR))]
PersonalReader = Annotated[User, Depends(require(*PERSONAL_READ))]
OfficeReader = Annotated[User, Depends(require(*OFFICE))]
Anyone = Annotated[User, Depends(require(*ALL))]


# Bounded numbers: unbounded ints from a client overflow the database's integer types (500s).
IntId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Version = Annotated[int, Query(ge=0, le=2**62)]
