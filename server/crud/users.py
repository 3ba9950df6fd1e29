"""Staff accounts: creation, freezing, role and password changes. Login and tokens are
server/core/auth.py.

Only two callers create accounts or grant power directly: the server's console (`fpverify server
create-user`, the root of trust, see docs/server.md) and the execution of an approved special
operation (server/crud/approvals.py). The API's sysadmin routes file approval requests instead.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.core.auth import check_new_password, revoke_user_tokens
from fpverify.server.core.security import hash_password
from fpverify.server.crud.errors import Conflict, Denied, Invalid, NotFound
from fpverify.server.ingest import feed
from fpverify.server.models import Role, User, utcnow

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
CONSOLE = "console"  # actor and creator of accounts made on the server's console


def check_new_account(s: Session, username: str, role: str | None) -> None:
    if not USERNAME_RE.match(username):
        raise Invalid("username: 2-64 characters of letters, digits, _ . @ -")
    _check_role(role)
    if s.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")


def _check_role(role: str | None) -> None:
    if role not in set(Role):
        raise Invalid(f"role must be one of {', '.join(Role)}")


def create_user(s: Session, actor: str, username: str, password: str, role: str, created_by: str | None = None,
                one_time: bool = False) -> User:
    """Create an account. `one_time`: the password is a one-time password the user must replace."""
    check_new_account(s, username, role)
    problem = check_new_password(password)
    if problem:
        raise Invalid(problem)
    user = User(username=username, password_hash=hash_password(password), role=role, frozen=False,
                created_at=utcnow(), created_by=created_by or actor, must_change_password=one_time)
    s.add(user)
    s.flush()
    audit.record(s, actor, "user.create", "user", user.id, None, _public(user),
                 note=f"role={role}; created_by={user.created_by}")
    return user


def _public(user: User) -> dict:
    """What the audit digests of a user (never the password hash itself)."""
    return {"id": user.id, "username": user.username, "role": user.role, "frozen": user.frozen,
            "created_by": user.created_by, "must_change_password": user.must_change_password}


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def by_name(s: Session, username: str) -> User | None:
    return s.scalar(select(User).where(User.username == username))


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.id)))


def set_frozen(s: Session, actor: str, user_id: int, frozen: bool) -> User:
    """Freeze (staff leaving or moving): no login, and every token stops working at once.
    Freezing is direct; unfreezing gives power back and runs only as an approved operation."""
    user = get_user(s, user_id)
    if user.username == actor:
        raise Denied("you cannot freeze or unfreeze your own account")
    before = _public(user)
    user.frozen = frozen
    if frozen:
        revoke_user_tokens(s, user.id)
    audit.record(s, actor, "user.freeze" if frozen else "user.unfreeze", "user", user.id, before, _public(user))
    feed.notify_stations(s)  # a clerk's shift ends at the stations' next pull
    return user


def reset_password(s: Session, actor: str, user_id: int, one_time_password: str) -> User:
    """Set a one-time password (approved operation): sessions end; the user must choose a new one."""
    user = get_user(s, user_id)
    if user.username == actor:
        raise Denied("change your own password with your current one (POST /auth/password)")
    before = _public(user)
    user.password_hash = hash_password(one_time_password)
    user.must_change_password = True
    revoke_user_tokens(s, user.id)
    audit.record(s, actor, "user.password_reset", "user", user.id, before, _public(user))
    return user


def change_role(s: Session, actor: str, user_id: int, role: str) -> User:
    """Give an account another role (approved operation). Nobody changes their own role."""
    _check_role(role)
    user = get_user(s, user_id)
    if user.username == actor:
        raise Denied("nobody changes their own role")
    before = _public(user)
    user.role = role
    revoke_user_tokens(s, user.id)
    audit.record(s, actor, "user.role", "user", user.id, before, _public(user), note=f"role={role}")
    feed.notify_stations(s)
    return user
