"""The API router under settings.api_prefix (/api/v1), and the API docs served with no internet.

`mount_docs(app, api_prefix)` adds Swagger UI (/docs) and ReDoc (/redoc) from assets vendored in
static/vendor/ (see its README.md: versions, licences, checksums), the OpenAPI document at
/openapi.json (and at {api_prefix}/openapi.json, where clients found it first) and the favicon.
A hospital's registry usually has no route to the internet: FastAPI's defaults load the UI from a
CDN, fonts from Google and ask validator.swagger.io about the spec, so none of them is used here.
"""

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from fpverify.server.api.routes import (
    alerts,
    approvals,
    audit,
    auth,
    devices,
    enrollments,
    health,
    his,
    holders,
    results,
    staff,
    stays,
    users,
)

api_router = APIRouter()
for module in (auth, users, staff, devices, holders, enrollments, results, his, alerts, stays, approvals, audit,
               health):
    api_router.include_router(module.router)

STATIC = Path(__file__).resolve().parent / "static"
DOCS_STATIC = "/docs/static"
OPENAPI_URL = "/openapi.json"
# The browser may load nothing from elsewhere. Swagger UI's one inline script is allowed by its hash;
# both UIs set inline styles, and ReDoc renders in a worker it creates from a blob.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
)


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    scripts = re.findall(rb"<script>(.*?)</script>", page.body, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    page.headers["Content-Security-Policy"] = _DOCS_CSP.format(hashes=hashes)
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def mount_docs(app: FastAPI, api_prefix: str) -> None:
    """Serve the API docs, the OpenAPI document and the favicon from the registry itself.
    The app must be created with openapi_url=OPENAPI_URL, docs_url=None and redoc_url=None."""
    app.mount(DOCS_STATIC, StaticFiles(directory=str(STATIC)), name="api-docs-static")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")  # behind a proxy that strips a prefix
        return root + OPENAPI_URL, root + DOCS_STATIC

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, static = urls(request)
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=spec,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{static}/vendor/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{static}/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url=f"{static}/favicon.svg",
                oauth2_redirect_url=None,
                # null: never send the spec's address to validator.swagger.io (the default)
                swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, static = urls(request)
        return _with_csp(
            get_redoc_html(
                openapi_url=spec,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{static}/vendor/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{static}/favicon.svg",
                with_google_fonts=False,
            )
        )

    @app.get(f"{api_prefix}/openapi.json", include_in_schema=False)
    async def openapi_under_prefix() -> JSONResponse:
        return JSONResponse(app.openapi())

    # Browsers ask for /favicon.ico on every page that names none (the dashboard's included).
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon_ico() -> FileResponse:
        return FileResponse(
            STATIC / "favicon.ico",
            media_type="image/x-icon",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/favicon.svg", include_in_schema=False)
    async def favicon_svg() -> FileResponse:
        return FileResponse(
            STATIC / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )
