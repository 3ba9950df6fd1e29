"""The API docs work on a hospital network with no internet: /docs and /redoc load only what the
registry serves (checked in Chromium with every other host blocked, and by reading the pages), the
OpenAPI document is at /openapi.json (and where it was, /api/v1/openapi.json), and there is a favicon."""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from fpverify.server.api import main as api_main

CHROMIUM = "/usr/bin/chromium"
HOST = "registry.hospital-a.test"  # not "localhost": Swagger UI treats localhost specially
DOC_PAGES = ("/docs", "/redoc")


class _Refs(HTMLParser):
    """Every URL a page names: src/href attributes and the quoted paths in its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url", "action") and v]

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", data)


def _page_refs(client, path: str) -> tuple[str, list[str]]:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    parser = _Refs()
    parser.feed(r.text)
    return r.text, parser.urls


def _external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in ("data", "blob")) or bool(parts.netloc)


def test_openapi_document_at_the_conventional_path_and_the_old_one(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"] == "application/json"
    doc = spec.json()
    assert doc["openapi"].startswith("3.") and "/api/v1/auth/login" in doc["paths"]
    old = client.get("/api/v1/openapi.json")
    assert old.status_code == 200 and old.json() == doc
    # The UIs render what the document names (a logo, external docs): it names nothing elsewhere.
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", spec.text, re.I)


@pytest.mark.parametrize("path", DOC_PAGES)
def test_doc_pages_reference_nothing_external(client, path):
    text, urls = _page_refs(client, path)
    assert "/openapi.json" in urls and any(u.endswith(".js") for u in urls), urls
    assert not [u for u in urls if _external(u)], urls
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), "an absolute URL in the page"
    if path == "/docs":
        assert '"validatorUrl": null' in text  # else Swagger UI sends the spec's address to swagger.io
    # Everything the page names is served here, and the stylesheets name nothing outside.
    for url in urls:
        r = client.get(urljoin(path, url))
        assert r.status_code == 200, url
        if url.endswith(".css"):
            refs = re.findall(r"url\(\s*['\"]?([^'\")]+)", r.text) + re.findall(
                r"@import\s+['\"]([^'\"]+)", r.text
            )
            assert not [u for u in refs if _external(u)], refs
    # The browser is told so too: no script, style, font or connection from anywhere else.
    csp = client.get(path).headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "http" not in csp


def test_vendored_assets_are_the_recorded_files_with_their_licences():
    vendor = api_main.STATIC / "vendor"
    listed = {}
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    files = {p.relative_to(vendor).as_posix() for p in vendor.glob("*/*")}
    assert files == set(listed), "SHA256SUMS and the vendored files differ"
    for name, digest in listed.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, f"{name} was changed"
    for pkg in ("swagger-ui", "redoc"):
        assert (vendor / pkg / "LICENSE").stat().st_size > 500


def test_favicon_served_for_the_api_docs_and_the_dashboard(client):
    ico = client.get("/favicon.ico")  # what a browser asks for on a page that names no icon
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    with Image.open(io.BytesIO(ico.content)) as im:
        assert im.format == "ICO" and {(16, 16), (32, 32)} <= set(im.info["sizes"])
    for url in ("/favicon.svg", "/docs/static/favicon.svg"):
        svg = client.get(url)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.lstrip().startswith("<svg") and "href" not in svg.text
    for path in DOC_PAGES:
        _, urls = _page_refs(client, path)
        assert "/docs/static/favicon.svg" in urls
    _, urls = _page_refs(client, "/dashboard/login")  # every dashboard page extends the same base
    assert "/favicon.svg" in urls


# ---- in Chromium, with every request to another host blocked ------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fpverify.server.app import create_app
    from fpverify.server.core.config import Settings
    from fpverify.server.db import Database
    from fpverify.services import ServedApp

    path = tmp_path_factory.mktemp("docs") / "registry.db"
    db = Database(
        settings=Settings(database_url=f"sqlite:///{path}", mqtt_enabled=False, national_id_key="docs-test")
    )
    db.create_all()
    server = ServedApp(create_app(db.settings, db)).start()
    yield f"http://{HOST}:{server.port}"
    server.stop()
    db.dispose()


@pytest.fixture(scope="module")
def offline_page(served):
    """A Chromium page that resolves HOST to 127.0.0.1 and aborts every request to any other host."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser test skipped")
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        ctx = browser.new_context(viewport={"width": 1366, "height": 900})
        ctx.set_default_timeout(30000)
        blocked: list[str] = []

        def guard(route):
            if urlsplit(route.request.url).hostname == HOST:
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        ctx.route("**/*", guard)
        page = ctx.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        yield page, blocked, problems
        browser.close()


# What the rendered page loads from elsewhere (links to follow by hand are not loads).
_LOADED_ELSEWHERE = """() => [...document.querySelectorAll(
    'img[src], script[src], iframe[src], source[src], embed[src], object[data], link[href]:not([rel=alternate])')]
    .map(e => e.src || e.data || e.href)
    .filter(u => !u.startsWith(location.origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'))"""


def _offline(offline_page, url: str, title: str):
    """Open url in the offline browser; return the page once its title element shows the API's name."""
    page, blocked, problems = offline_page
    blocked.clear(), problems.clear()
    page.goto(url)
    page.wait_for_selector(title)
    assert "fpverify registry" in page.inner_text(title)
    return page


def _nothing_from_elsewhere(offline_page) -> None:
    page, blocked, problems = offline_page
    assert blocked == [] and problems == [], (blocked, problems)  # CSP refusals are console errors
    assert page.evaluate(_LOADED_ELSEWHERE) == []


@pytest.mark.slow
def test_swagger_ui_renders_offline(served, offline_page):
    page = _offline(offline_page, f"{served}/docs", "#swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/auth/login" in p for p in paths), paths[:5]
    # Open one operation: its schema renders from the spec the page fetched here.
    page.locator(".opblock-summary", has_text="/api/v1/auth/login").first.click()
    page.wait_for_selector(".opblock.is-open .opblock-section-header")
    assert page.locator(".validator, .errors-wrapper").count() == 0
    _nothing_from_elsewhere(offline_page)


@pytest.mark.slow
def test_redoc_renders_offline(served, offline_page):
    page = _offline(offline_page, f"{served}/redoc", "h1")
    page.wait_for_selector("[role=menuitem]")
    menu = " ".join(page.locator("[role=menuitem]").all_inner_texts()).lower()
    assert "login" in menu, menu[:300]
    _nothing_from_elsewhere(offline_page)
