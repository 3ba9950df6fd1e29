"""The kiosk page in Debian's Chromium (Playwright), driving the whole desk flow against the simulated
sensor, in both languages: a match, a borrowed card, a poor press then a good one, a sensor pulled out,
a bad read, a delegate, not enrolled, a blocked card, a cancel from the HIS; offline with results
waiting. The card arrives as a keyboard-wedge reader types it (characters, then Enter).

FPVERIFY_TEST_SCREENSHOTS=docs/screenshots saves docs/screenshots/station-<screen>-<lang>.png.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from fpverify.edge.kiosk.bench import CHROMIUM
from tests.edge.helpers import DELEGATE, HOLDER, STRANGER
from tests.edge.kiosk.helpers import HIS_TOKEN, UNPLUG, smudge, tip_only

CJK = re.compile(r"[\u4e00-\u9fff]")

pytestmark = [
    pytest.mark.slow,  # a browser and a running desk: many seconds
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped",
    ),
]


@pytest.fixture
def page(browser, desk):
    # The last test's outcome may still be held on screen (outcome_hold_s): start from "present your card".
    desk.display.idle()
    ctx = browser.new_context(viewport={"width": 1024, "height": 600})  # the 7-inch desk screen
    ctx.set_default_timeout(30000)
    requests = []
    ctx.on("request", lambda r: requests.append(r.url))
    p = ctx.new_page()
    p.requests = requests
    desk.hand.delay_s = 1.0
    yield p
    desk.hand.delay_s = 0.0
    ctx.close()
    local = desk.url.rsplit("/kiosk", 1)[0]
    assert all(u.startswith(local) for u in requests), "the page fetched something from elsewhere"


def snap(page, name: str, lang: str) -> None:
    folder = os.environ.get("FPVERIFY_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"station-{name}-{'zh' if lang == 'zh_CN' else 'en'}.png"))


def screen(page, name: str, timeout: float = 30000) -> dict:
    page.wait_for_selector(f"body[data-screen='{name}']", timeout=timeout)
    return {
        "title": page.inner_text("#title"),
        "body": page.inner_text("#body"),
        "staff": page.inner_text("#staff"),
        "hints": page.inner_text("#hints"),
        "tone": page.get_attribute("body", "data-tone"),
    }


def scan(page, text: str) -> float:
    page.keyboard.type(text, delay=5)  # the reader types fast; then Enter
    page.keyboard.press("Enter")
    return time.monotonic()


def check_language(shown: dict, lang: str) -> None:
    assert bool(CJK.search(shown["title"])) == (lang == "zh_CN"), shown


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_desk_flow_in_the_browser(page, desk, fingers, lang):
    page.goto(f"{desk.url}?lang={lang}")
    idle = screen(page, "present_card")
    check_language(idle, lang)
    assert page.get_attribute("html", "lang") == lang.replace("_", "-")
    # No network to the registry (this desk has no MQTT): the page says so, and counts what waits.
    page.wait_for_selector("#net.offline")
    snap(page, "present-card", lang)

    # A match: the enrolled finger is asked for; the image transfer shows "keep still"; green.
    desk.hand.queue(fingers[HOLDER][3])
    t0 = scan(page, "CARD0042")
    ask = screen(page, "place_finger")
    assert ("右手食指" in ask["title"]) if lang == "zh_CN" else ("right index finger" in ask["title"])
    snap(page, "press-finger", lang)
    screen(page, "reading")
    snap(page, "reading", lang)
    ok = screen(page, "match")
    took = time.monotonic() - t0
    assert ok["tone"] == "ok" and took < 20
    check_language(ok, lang)
    pending = desk.station.outbox.count()
    page.wait_for_function(f"document.getElementById('pending').textContent.includes('{pending}')")
    snap(page, "verified", lang)

    # A borrowed card: red, retain the card, call the insurance office.
    desk.hand.queue(fingers[STRANGER][1])
    scan(page, "CARD0042")
    bad = screen(page, "no_match")
    assert bad["tone"] == "bad"
    assert (
        ("扣留" in bad["staff"] and "医保办" in bad["staff"])
        if lang == "zh_CN"
        else ("retain the card" in bad["staff"] and "insurance office" in bad["staff"])
    )
    snap(page, "not-holder", lang)

    # A poor press (only the tip, low on the sensor) then a good one: live advice, then verified.
    desk.hand.queue(tip_only(fingers[HOLDER][2]), fingers[HOLDER][3])
    scan(page, "CARD0042")
    again = screen(page, "press_again")
    assert ("往上移" in again["hints"]) if lang == "zh_CN" else ("Move your finger up" in again["hints"])
    snap(page, "press-again", lang)
    screen(page, "match")

    # The sensor pulled out: a clear "reader not working", then it works again once plugged back.
    desk.hand.queue(UNPLUG)
    scan(page, "CARD0042")
    err = screen(page, "sensor_error")
    assert err["tone"] == "warn"
    check_language(err, lang)
    snap(page, "sensor-error", lang)
    time.sleep(3.2)
    desk.hand.queue(fingers[HOLDER][3])
    scan(page, "CARD0042")
    screen(page, "match")


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_every_other_screen(page, desk, fingers, lang):
    page.goto(f"{desk.url}?lang={lang}")
    screen(page, "present_card")
    before = desk.station.outbox.history_ids()
    scan(page, "11010519491231002")  # a social-security number with a digit dropped
    misread = screen(page, "card_not_read")
    assert ("重新" in misread["hints"]) if lang == "zh_CN" else ("scan again" in misread["hints"])
    snap(page, "card-not-read", lang)
    assert desk.station.outbox.history_ids() == before  # a bad read is never a verification

    desk.hand.queue(fingers[DELEGATE][3])
    scan(page, "CARD0042")
    assert screen(page, "delegate_match")["tone"] == "ok"
    snap(page, "delegate", lang)
    scan(page, "CARD0099")  # not in this desk's cache, and this desk has no registry to fetch it from
    here = screen(page, "not_enrolled_here")
    check_language(here, lang)
    assert ("身份证" in here["body"]) if lang == "zh_CN" else ("ID card" in here["body"])
    snap(page, "not-enrolled-here", lang)
    scan(page, "CARD0043")
    assert screen(page, "card_blocked")["tone"] == "bad"
    snap(page, "card-blocked", lang)
    desk.hand.queue(smudge(), smudge(), smudge())
    scan(page, "CARD0042")
    screen(page, "poor_quality")
    snap(page, "poor-quality", lang)

    # The clerk's HIS starts a check, then cancels it while the page asks for the finger.
    his = httpx.Client(base_url=desk.his, headers={"Authorization": f"Bearer {HIS_TOKEN}"}, timeout=30)
    job = his.post(
        "/his/v1/verifications", json={"card": "CARD0042", "operator_id": "clerk-07", "purpose": "billing"}
    ).json()["id"]
    assert screen(page, "place_finger")
    assert page.inner_text("#purpose") == ("缴费结算" if lang == "zh_CN" else "Payment")
    assert his.delete(f"/his/v1/verifications/{job}").json()["state"] == "cancelled"
    screen(page, "cancelled")
    snap(page, "cancelled", lang)
    his.close()


def test_language_switch_and_no_biometric_data_on_the_page(page, desk, fingers):
    page.goto(desk.url)  # Chinese first
    assert CJK.search(screen(page, "present_card")["title"])
    page.click("#languages a[data-lang='en']")
    page.wait_for_url(re.compile(r".*lang=en"))
    assert screen(page, "present_card")["title"] == "Please present your insurance card"
    frames = []
    page.on("response", lambda r: frames.append(r))
    desk.hand.queue(fingers[HOLDER][3])
    scan(page, "CARD0042")
    screen(page, "match")
    html = page.content()
    assert "CARD0042" not in page.inner_text("body") and "<img" not in html and "<canvas" not in html
    images = [r.url for r in frames if "image" in (r.headers.get("content-type") or "")]
    assert all("/kiosk/static/" in u and u.endswith(".svg") for u in images), images  # only the icons
