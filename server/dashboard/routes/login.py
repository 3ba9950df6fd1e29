"""Log in (and choose one's own password after a one-time one), log out. The rules, throttling
and audit are server/core/auth.py's, shared with the API; this module speaks HTML and cookies."""

from __future__ import annotations

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from fpverify.i18n import normalise_language
from fpverify.server.core import auth as core_auth
from fpverify.server.dashboard import auth, i18n
from fpverify.server.dashboard.routes.common import ViewerDep, render, session, speaker

router = APIRouter()


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard/"


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=303)


def _login_form(request: Request, next_url: str, error: str | None = None, status_code: int = 200,
                change: bool = False, retry_after: int | None = None, values: dict | None = None) -> HTMLResponse:
    """The form, with `error` (a message id, formatted with `values`) in the viewer's language."""
    token = auth.new_login_csrf()
    shown = speaker(request)._(error, **(values or {})) if error else None
    resp = render(request, "login.html", None, status_code=status_code, csrf=token, next=_safe_next(next_url),
                  error=shown, change=change)
    resp.set_cookie(auth.LOGIN_COOKIE, token, **auth.cookie_kwargs(request, 3600))
    if retry_after:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = Query(default=None, max_length=500)):
    return _login_form(request, next)


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login_submit(request: Request, username: str = Form("", max_length=64),
                       password: str = Form("", max_length=1024), new_password: str = Form("", max_length=1024),
                       new_password2: str = Form("", max_length=1024), csrf_token: str = Form("", max_length=200),
                       next: str = Form("/dashboard/", max_length=500)):
    auth.check_login_csrf(request, csrf_token)
    if not username or not password:
        return _login_form(request, next, "enter a user name and a password", 401)
    if new_password != new_password2:
        return _login_form(request, next, "the two new passwords differ", 422, change=True)
    app = request.app
    client = core_auth.client_of(request)

    def work():
        with app.state.db.sessionmaker() as s:
            user, token = core_auth.login(s, app.state.settings, client, username, password, new_password or None)
            if user.role not in auth.DASHBOARD_ROLES:  # refused here, not by a loop of 403 pages
                core_auth.revoke_token(s, token)
                s.commit()
                return None
            return token

    try:
        token = await run_in_threadpool(work)
    except core_auth.LoginError as exc:
        return _login_form(request, next, exc.msgid, exc.status_code, change=isinstance(exc, core_auth.PasswordChange),
                           retry_after=exc.retry_after, values=exc.values)
    if token is None:
        raise auth.Refused(403, auth.NO_DASHBOARD)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(auth.COOKIE, token, **auth.cookie_kwargs(request, app.state.settings.token_ttl_minutes * 60))
    resp.delete_cookie(auth.LOGIN_COOKIE, path=auth.PATH)
    return resp


@router.get("/dashboard/language")
def choose_language(request: Request, to: str = Query(default="zh_CN", max_length=10),
                    next: str | None = Query(default=None, max_length=500)) -> RedirectResponse:
    """The switch on every page: remembers the language in a cookie (a preference, not a session)."""
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(i18n.LANG_COOKIE, normalise_language(to), **(auth.cookie_kwargs(request, 365 * 86400)
                                                                 | {"samesite": "lax"}))
    return resp


@router.post("/dashboard/logout")
def logout(request: Request, v: ViewerDep, csrf_token: str = Form("", max_length=200)):
    auth.check_csrf(request, v, csrf_token)
    with session(request) as s:
        core_auth.revoke_token(s, v.token)
        s.commit()
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(auth.COOKIE, path=auth.PATH)
    return resp
