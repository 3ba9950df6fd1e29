"""The insurance office's dashboard, served by the registry under /dashboard.

`mount(app)` adds the pages, the static files (CSS, JS, vendored Chart.js) and the handlers that
turn "not logged in" into a redirect and refusals into HTML pages. See docs/dashboard.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

# Pages use no inline script or style: the policy can forbid both.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


def mount(app: FastAPI) -> None:
    from urllib.parse import quote

    from fpverify.server.dashboard import auth, routes

    app.include_router(routes.router)
    app.mount("/dashboard/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, exc: auth.LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/dashboard/"
        resp = RedirectResponse(f"/dashboard/login?next={quote(target, safe='')}", status_code=303)
        resp.delete_cookie(auth.COOKIE, path=auth.PATH)
        return resp

    @app.exception_handler(auth.Refused)
    async def _refused(request: Request, exc: auth.Refused):
        return routes.render(request, "error.html", None, status_code=exc.status_code, message=exc.message,
                             code=exc.status_code)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/dashboard"):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
