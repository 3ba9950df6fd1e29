"""Plain helpers of the dashboard tests (fixtures, `browser` among them, are in conftest.py): a login
through the pages, and Chromium's path, flags and screenshots for the browser tests."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.server.dashboard import seed

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def snap(page, name: str) -> None:
    """A full-page screenshot into $FPVERIFY_TEST_SCREENSHOTS, when it is set."""
    folder = os.environ.get("FPVERIFY_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: TestClient, username: str, password: str = seed.PASSWORD) -> str:
    page = client.get("/dashboard/login")
    token = CSRF.search(page.text).group(1)
    r = client.post("/dashboard/login", data={"username": username, "password": password, "csrf_token": token,
                                              "next": "/dashboard/"})
    assert r.status_code == 200 and r.url.path == "/dashboard/", r.text[:500]
    return CSRF.search(r.text).group(1)  # the session's form token
