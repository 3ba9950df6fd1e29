"""A desk for the kiosk tests: a real Station (simulated sensor on a pty, the real pyfingerprint and
matcher, the encrypted store) with its kiosk page and HIS API served by uvicorn, and a simulated
hand that presses whatever the test queued at each "press your finger" prompt."""

from __future__ import annotations

import pytest

from fpverify.edge.kiosk.bench import launch_chromium
from tests.edge.helpers import enrolled_feed
from tests.edge.kiosk.helpers import close_desk, make_desk


@pytest.fixture(scope="module")
def matcher_feed(fingers):
    return enrolled_feed(fingers)


@pytest.fixture(scope="module")
def desk(tmp_path_factory, matcher_feed):
    d = make_desk(tmp_path_factory.mktemp("desk"), matcher_feed)
    yield d
    close_desk(d)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, for the browser tests (they skip where it is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()
