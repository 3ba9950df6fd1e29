"""Authentication of staff, for the API and the dashboard alike: the login flow, bearer tokens and
the role groups. The transports stay thin: server/api/deps.py reads the bearer header,
server/dashboard/auth.py the session cookie (which holds a bearer token of the same kind).

Login rules (docs/server.md, "Logins"):
- Each client (address) may try `login_client_per_minute` logins a minute, with any user names;
  beyond that: Throttled (HTTP 429 with Retry-After).
- Per (client, user name): after `login_free_failures` failures in a row, each failure doubles the
  wait (from `login_delay_s` up to `login_delay_max_s`); while it lasts the password is not even
  checked (Throttled). Another client, e.g. the real user's desk, is never slowed by them, so
  knowing a user name does not let anyone lock that user out. Unknown names are counted the same.
- One message for every failure. Account state (frozen, a password to change) is told only after
  a correct password.
- Every login, failure, lockout (a delay imposed) and throttle is an audit row.

Messages are English message ids marked N_ with {placeholders}: the API sends them formatted in
English (LoginError.message), the dashboard translates `msgid` and formats it with `values`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fpverify.i18n import N_
from fpverify.server import audit
from fpverify.server.core.config import Settings
from fpverify.server.core.security import hash_password, new_token, token_digest, verify_password
from fpverify.server.models import ApiToken, LoginThrottle, Role, User, utcnow

# Who may reach what. Personal data (card holders, results) is for the business roles, never sysadmin.
ALL = (Role.SYSADMIN, Role.ENROLLER, Role.AUDITOR, Role.SUPERVISOR)
PERSONAL_READ = (Role.ENROLLER, Role.SUPERVISOR, Role.AUDITOR)
OFFICE = (Role.SUPERVISOR, Role.AUDITOR)  # the insurance office; on the dashboard, who sees names
DASHBOARD = (Role.SUPERVISOR, Role.AUDITOR, Role.SYSADMIN)

FAILED = N_("invalid user name or password")
THROTTLED = N_("too many login attempts; try again in {seconds} s")
FROZEN = N_("this account is frozen; ask the system administrator")
ONE_TIME = N_("choose your own password: this account has a one-time password")
SHORT_PASSWORD = N_("password must have at least {n} characters")
SAME_PASSWORD = N_("the new password must differ from the old one")
MIN_PASSWORD = 10
_CLIENT_WINDOW = timedelta(minutes=1)
_FORGET_AFTER = timedelta(days=1)


class LoginError(Exception):
    status_code = 401

    def __init__(self, msgid: str = FAILED, retry_after: int | None = None, **values):
        self.msgid, self.values = msgid, values  # for a translated display
        self.message = msgid.format(**values) if values else msgid  # English (the API)
        super().__init__(self.message)
        self.retry_after = retry_after


class LoginFailed(LoginError):
    """Unknown user or wrong password: the same message; the reason is only audited."""


class Throttled(LoginError):
    status_code = 429


class AccountRefused(LoginError):
    """The password was right, but the account may not log in (frozen, or must choose a password)."""

    status_code = 403


class PasswordChange(AccountRefused):
    """The password was right; the user must choose a (valid) new one to log in."""


def client_of(request) -> str:
    """Who is calling (a Starlette request), for throttling: the peer address. Behind a reverse
    proxy that is the proxy's: give each desk network its own proxy or raise login_client_per_minute."""
    return request.client.host if request.client else "unknown"


def check_new_password(password: str) -> str | None:
    """Why a chosen password is refused (English), or None."""
    return SHORT_PASSWORD.format(n=MIN_PASSWORD) if len(password) < MIN_PASSWORD else None


def login(s: Session, settings: Settings, client: str, username: str, password: str,
          new_password: str | None = None, now: datetime | None = None) -> tuple[User, str]:
    """Check a login and return (user, new bearer token). Commits itself, also when it raises, so a
    refused attempt still counts and is audited. With `new_password` the user replaces their own
    password (required after a one-time password) in the same step."""
    now = now or utcnow()
    client, name = (client or "unknown")[:64], username[:64]
    _forget_old(s, now)
    per_client = _throttle_row(s, client, "", now)
    if now - per_client.at >= _CLIENT_WINDOW:
        per_client.at, per_client.failures = now, 0
    if per_client.failures >= settings.login_client_per_minute:
        _throttled(s, name, client, per_client.at + _CLIENT_WINDOW - now, "client")
    per_client.failures += 1  # counts attempts, good or bad
    if not name:  # "" is the key of the client's own row
        s.commit()
        raise LoginFailed()
    per_user = _throttle_row(s, client, name, now)
    if per_user.not_before is not None and per_user.not_before > now:
        _throttled(s, name, client, per_user.not_before - now, "user")

    user = s.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password) or user is None:
        per_user.failures += 1
        per_user.at = now
        reason = "unknown user" if user is None else "wrong password"
        audit.record(s, name, "login.failed", "user", user.id if user else "-",
                     note=f"{reason}; client={client}; failures={per_user.failures}")
        over = per_user.failures - settings.login_free_failures
        if over > 0:
            delay = min(settings.login_delay_s * 2 ** min(over - 1, 30), settings.login_delay_max_s)
            per_user.not_before = now + timedelta(seconds=delay)
            audit.record(s, name, "login.lockout", "login", client, note=f"delay={delay:.0f}s")
        s.commit()
        raise LoginFailed()
    s.delete(per_user)  # a correct password ends this client's delays for this name
    if user.frozen:
        _refuse(s, user, client, "frozen", FROZEN)
    if user.must_change_password and new_password is None:
        _refuse(s, user, client, "password change required", ONE_TIME, PasswordChange)
    if new_password is not None:
        if check_new_password(new_password):
            s.commit()
            raise PasswordChange(SHORT_PASSWORD, n=MIN_PASSWORD)
        if new_password == password:
            s.commit()
            raise PasswordChange(SAME_PASSWORD)
        user.password_hash = hash_password(new_password)
        user.must_change_password = False
        revoke_user_tokens(s, user.id)
        audit.record(s, user.username, "user.password_change", "user", user.id, note=f"client={client}")
    user.last_login_at = now
    audit.record(s, user.username, "login", "user", user.id, note=f"client={client}")
    token = issue_token(s, user, settings.token_ttl_minutes, now)
    s.commit()
    return user, token


def _throttle_row(s: Session, client: str, username: str, now: datetime) -> LoginThrottle:
    q = select(LoginThrottle).where(LoginThrottle.client == client, LoginThrottle.username == username)
    row = s.scalar(q.with_for_update())
    if row is not None:
        return row
    try:
        with s.begin_nested():  # a concurrent first attempt may insert the same row
            row = LoginThrottle(client=client, username=username, failures=0, at=now)
            s.add(row)
    except IntegrityError:
        row = s.scalar(q.with_for_update())
    return row


def _forget_old(s: Session, now: datetime) -> None:
    s.execute(delete(LoginThrottle).where(LoginThrottle.at < now - _FORGET_AFTER,
                                          (LoginThrottle.not_before.is_(None)) |
                                          (LoginThrottle.not_before < now)))


def _throttled(s: Session, name: str, client: str, wait: timedelta, scope: str) -> None:
    seconds = max(1, math.ceil(wait.total_seconds()))
    audit.record(s, name, "login.throttled", "login", client, note=f"{scope}; retry_after={seconds}s")
    s.commit()
    raise Throttled(THROTTLED, retry_after=seconds, seconds=seconds)


def _refuse(s: Session, user: User, client: str, reason: str, message: str,
            error: type[AccountRefused] = AccountRefused) -> None:
    audit.record(s, user.username, "login.refused", "user", user.id, note=f"{reason}; client={client}")
    s.commit()
    raise error(message)


# ---- bearer tokens ------------------------------------------------------------------------------

def issue_token(s: Session, user: User, ttl_minutes: int, now: datetime | None = None) -> str:
    now = now or utcnow()
    token = new_token()
    s.add(ApiToken(token_hash=token_digest(token), user_id=user.id, created_at=now,
                   expires_at=now + timedelta(minutes=ttl_minutes), revoked=False))
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
    if tok.revoked or tok.expires_at <= now or user.frozen or user.must_change_password:
        return None
    return user


def revoke_token(s: Session, token: str) -> None:
    s.execute(update(ApiToken).where(ApiToken.token_hash == token_digest(token)).values(revoked=True))


def revoke_user_tokens(s: Session, user_id: int) -> None:
    """Every session of the account ends at once (freeze, role change, password reset)."""
    s.execute(update(ApiToken).where(ApiToken.user_id == user_id).values(revoked=True))
