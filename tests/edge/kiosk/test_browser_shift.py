"""The clerk's sign-in screen in Debian's Chromium (Playwright), in both languages, at a desk that
requires a shift: the sign-in covers the patient's screen, a wrong PIN says so, the clerk's finger
opens the shift (the bar names the clerk), a card is checked, sign-out brings the sign-in back.

FPVERIFY_TEST_SCREENSHOTS=docs/screenshots saves docs/screenshots/station-sign-in-<lang>.png and
station-shift-open-<lang>.png.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fpverify.edge.kiosk.bench import CHROMIUM
from tests.edge.helpers import HOLDER
from tests.edge.kiosk.helpers import close_desk
from tests.edge.kiosk.shift_helpers import CLERK, clerk_fingers, make_shift_desk, staff_feed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing; browser tests skipped"),
]

WORDS = {
    "zh_CN": {"title": "工作人员签到", "wrong": "工号或 PIN 码不正确", "who": "当班：clerk.wang", "out": "签退",
              "signed_out": "您已签退"},
    "en": {"title": "Clerk sign-in", "wrong": "Operator ID or PIN not accepted", "who": "Clerk: clerk.wang",
           "out": "Sign out", "signed_out": "You have signed out"},
}


@pytest.fixture(scope="module")
def clerks():
    return clerk_fingers()


@pytest.fixture(scope="module")
def sdesk(tmp_path_factory, matcher_feed, clerks):
    d = make_shift_desk(tmp_path_factory.mktemp("shift-browser"), matcher_feed, staff_feed(clerks))
    yield d
    close_desk(d)


def snap(page, name: str, lang: str) -> None:
    folder = os.environ.get("FPVERIFY_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"station-{name}-{'zh' if lang == 'zh_CN' else 'en'}.png"))


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_sign_in_screen_finger_and_sign_out(browser, sdesk, clerks, fingers, lang):
    sdesk.station.shift.sign_out()
    sdesk.station.staff.set_pin_failures("clerk.wang", 0, None)
    sdesk.display.idle()
    words = WORDS[lang]
    ctx = browser.new_context(viewport={"width": 1024, "height": 600})
    ctx.set_default_timeout(30000)
    requests = []
    ctx.on("request", lambda r: requests.append(r.url))
    page = ctx.new_page()
    try:
        page.goto(f"{sdesk.url}?lang={lang}")
        page.wait_for_selector("#shift:not([hidden])")
        assert page.inner_text("#shift-title") == words["title"]
        assert page.is_hidden("#screen") and page.is_hidden("#shift-bar")
        snap(page, "sign-in", lang)

        # a wrong PIN: the note says so; the PIN field is emptied at once
        page.fill("#pin-operator", "clerk.wang")
        page.fill("#pin-code", "000001")
        page.click("#pin-submit")
        page.wait_for_function(f"document.getElementById('shift-note').textContent.includes({words['wrong']!r})")
        assert page.input_value("#pin-code") == ""
        assert sdesk.station.shift.operator() is None

        # the clerk's finger opens the shift: the bar names the clerk, the patient's screen is back
        sdesk.hand.delay_s = 1.0
        sdesk.hand.queue(clerks[CLERK][3])
        page.click("#shift-finger")
        page.wait_for_selector("#shift-bar:not([hidden])")
        assert page.inner_text("#shift-who") == words["who"]
        assert page.inner_text("#shift-signout") == words["out"] and page.is_hidden("#shift")
        sdesk.sim.lift_finger()
        page.wait_for_selector("body[data-screen='present_card']")
        page.wait_for_function("document.activeElement.id === 'card-input'")  # the reader types there again
        snap(page, "shift-open", lang)

        # a card is checked under the shift, its result carries the clerk
        before = len(sdesk.station.outbox.history_ids())
        sdesk.hand.queue(fingers[HOLDER][3])
        page.keyboard.type("CARD0042", delay=5)
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-screen='match']")
        deadline = time.monotonic() + 10
        while len(sdesk.station.outbox.history_ids()) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sdesk.station.outbox.history_ids()[before:]  # recorded once
        assert sdesk.hand.outcomes[-1] == "match"

        # sign-out: the sign-in screen again, with the note
        page.click("#shift-signout")
        page.wait_for_selector("#shift:not([hidden])")
        page.wait_for_function(f"document.getElementById('shift-note').textContent.includes({words['signed_out']!r})")
        assert sdesk.station.shift.operator() is None
    finally:
        sdesk.hand.delay_s = 0.0
        ctx.close()
    local = sdesk.url.rsplit("/kiosk", 1)[0]
    assert all(u.startswith(local) for u in requests), "the page fetched something from elsewhere"
