"""Dashboard sessions, CSRF and what each role may see.

The session cookie holds a bearer token issued by the registry's one login flow (server/core/auth.py,
the same throttling, messages and audit as the API), so freezing an account, a password reset or
logout ends dashboard sessions exactly like API tokens.
The cookie is HttpOnly and SameSite=Strict; every form also carries a CSRF token, an HMAC of the
session token, and POSTs from another Origin are refused.

Roles: auditors read, supervisors read and act on alerts, sysadmins see aggregates and stations
but no personal data (card numbers masked, no names, no card-holder pages). Enrollers work at the
stations and get no dashboard.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from fpverify.server.core import auth as core_auth
from fpverify.server.models import Role, User

COOKIE = "fpv_session"
LOGIN_COOKIE = "fpv_login_csrf"
PATH = "/dashboard"
DASHBOARD_ROLES = core_auth.DASHBOARD
PERSONAL_ROLES = core_auth.OFFICE
NO_DASHBOARD = ("your role has no dashboard page: the dashboard is for the insurance office (supervisors, auditors) "
                "and sysadmins; enrollers work at the stations")


class LoginRequired(Exception):
    """No valid session: the handler redirects to the login page."""


class Refused(Exception):
    """A dashboard request that cannot be served; rendered as an HTML page with this status."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class Viewer:
    username: str
    role: str
    token: str
    csrf: str

    @property
    def personal(self) -> bool:
        """May see names and card numbers."""
        return self.role in PERSONAL_ROLES

    @property
    def can_act(self) -> bool:
        return self.role == Role.SUPERVISOR

    def card(self, card_number: str | None) -> str:
        """The card number, or a mask that keeps only the last two characters for correlation."""
        if not card_number:
            return ""
        return card_number if self.personal else "\u2022" * 6 + card_number[-2:]


def _csrf_key(request: Request) -> bytes:
    secret = request.app.state.settings.national_id_key.get_secret_value()
    return hashlib.sha256(b"fpverify-dashboard-csrf\x00" + secret.encode("utf-8")).digest()


def csrf_for(request: Request, session_token: str) -> str:
    return hmac.new(_csrf_key(request), session_token.encode("utf-8"), hashlib.sha256).hexdigest()


def viewer(request: Request) -> Viewer:
    """The logged-in dashboard user (dependency). LoginRequired when there is none."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired()
    with request.app.state.db.sessionmaker() as s:
        user: User | None = core_auth.user_for_token(s, token)
    if user is None:
        raise LoginRequired()
    if user.role not in DASHBOARD_ROLES:
        raise Refused(403, NO_DASHBOARD)
    return Viewer(user.username, user.role, token, csrf_for(request, token))


def require_personal(v: Viewer) -> None:
    if not v.personal:
        raise Refused(403, "this page shows personal data; your role may not see it")


def require_act(v: Viewer) -> None:
    if not v.can_act:
        raise Refused(403, "only supervisors handle alerts")


def check_origin(request: Request) -> None:
    """Refuse a state-changing request whose Origin (or Referer) names another site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return  # SameSite=Strict and the token still apply; some clients send no Origin
    parts = urlsplit(origin)
    if parts.netloc != request.headers.get("host", request.url.netloc):
        raise Refused(403, "cross-site request refused")


def check_csrf(request: Request, v: Viewer, token: str | None) -> None:
    check_origin(request)
    if not token or not hmac.compare_digest(token, v.csrf):
        raise Refused(403, "missing or wrong CSRF token; reload the page")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def cookie_kwargs(request: Request, max_age: int | None) -> dict:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": PATH,
            "max_age": max_age}


def check_login_csrf(request: Request, token: str | None) -> None:
    """The login form's token must match its cookie (double submit), and come from this site."""
    check_origin(request)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not token or not hmac.compare_digest(expected, token):
        raise Refused(403, "the login form expired or was not sent from this site; reload the login page")
