"""Staff accounts: creation, login with lockout, bearer tokens, freezing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.core.config import Settings
from fpverify.server.core.security import hash_password, new_token, token_digest, verify_password
from fpverify.server.crud.errors import Conflict, Denied, Invalid, NotFound
from fpverify.server.models import ApiToken, Role, User, utcnow

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 10


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"password must have at least {MIN_PASSWORD} characters")


def create_user(s: Session, actor: str, username: str, password: str, role: str) -> User:
    if not USERNAME_RE.match(username):
        raise Invalid("username: 2-64 characters of letters, digits, _ . @ -")
    if role not in set(Role):
        raise Invalid(f"role must be one of {', '.join(Role)}")
    _check_password(password)
    if s.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")
    user = User(username=username, password_hash=hash_password(password), role=role, frozen=False,
                failed_logins=0, created_at=utcnow())
    s.add(user)
    s.flush()
    audit.record(s, actor, "user.create", "user", user.id, None, _public(user), note=f"role={role}")
    return user


def _public(user: User) -> dict:
    """What the audit digests of a user (never the password hash itself)."""
    return {"id": user.id, "username": user.username, "role": user.role, "frozen": user.frozen}


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.id)))


class LoginFailed(Exception):
    """Same message for unknown user and wrong password; the reason is only audited."""


def authenticate(s: Session, settings: Settings, username: str, password: str,
                 now: datetime | None = None) -> User:
    """Check credentials with lockout. Commits the failure counter itself (so a failing request
    still counts) and raises LoginFailed; returns the user on success (caller commits)."""
    now = now or utcnow()
    user = s.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None:
        raise LoginFailed("invalid username or password")
    if user.frozen:
        audit.record(s, username, "login.refused", "user", user.id, note="frozen")
        s.commit()
        raise LoginFailed("account is frozen")
    if user.locked_until is not None and user.locked_until > now:
        audit.record(s, username, "login.refused", "user", user.id, note="locked")
        s.commit()
        raise LoginFailed("account is locked after repeated failures; try later")
    if not ok:
        user.failed_logins += 1
        note = f"failures={user.failed_logins}"
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            note += " locked"
        audit.record(s, username, "login.failed", "user", user.id, note=note)
        s.commit()
        raise LoginFailed("invalid username or password")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(s, username, "login", "user", user.id)
    return user


def issue_token(s: Session, user: User, ttl_minutes: int) -> str:
    token = new_token()
    s.add(ApiToken(token_hash=token_digest(token), user_id=user.id, created_at=utcnow(),
                   expires_at=utcnow() + timedelta(minutes=ttl_minutes), revoked=False))
    return token


def user_for_token(s: Session, token: str, now: datetime | None = None) -> User | None:
    """The active user behind a bearer token, or None (unknown, expired, revoked, frozen)."""
    now = now or utcnow()
    row = s.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_digest(token))
    ).first()
    if row is None:
        return None
    tok, user = row
    if tok.revoked or tok.expires_at <= now or user.frozen:
        return None
    return user


def revoke_token(s: Session, token: str) -> None:
    s.execute(update(ApiToken).where(ApiToken.token_hash == token_digest(token)).values(revoked=True))


def set_frozen(s: Session, actor: str, user_id: int, frozen: bool) -> User:
    """Freeze (staff leaving or moving): no login, and every token stops working at once."""
    user = get_user(s, user_id)
    if user.username == actor and frozen:
        raise Denied("you cannot freeze your own account")
    before = _public(user)
    user.frozen = frozen
    if frozen:
        s.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))
    audit.record(s, actor, "user.freeze" if frozen else "user.unfreeze", "user", user.id, before, _public(user))
    return user


def reset_password(s: Session, actor: str, user_id: int, password: str) -> User:
    user = get_user(s, user_id)
    _check_password(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    s.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))
    audit.record(s, actor, "user.password_reset", "user", user.id)
    return user


def change_role(s: Session, actor: str, user_id: int, role: str) -> User:
    if role not in set(Role):
        raise Invalid(f"role must be one of {', '.join(Role)}")
    user = get_user(s, user_id)
    before = _public(user)
    user.role = role
    s.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))
    audit.record(s, actor, "user.role", "user", user.id, before, _public(user), note=f"role={role}")
    return user
