"""`fpverify demo` shows each simulated desk's kiosk page: every desk serves its page on a free port
of 127.0.0.1, in Chinese first and in English, the page shows the states the scenario's visits
made (the card goes through the desk, as from its reader), the summary links every page, and
stopping the demo closes the pages and their threads."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import httpx
import pytest

from fpverify.demo.scenario import Event
from fpverify.demo.summary import print_kiosks, print_summary, summary
from fpverify.demo.system import Demo
from fpverify.edge.kiosk.texts import CATALOGS, SCREENS
from fpverify.services import PrivateMosquitto, port_free

pytestmark = pytest.mark.slow  # the demo's system: registry, broker, three stations, two enrolments

CJK = re.compile(r"[\u4e00-\u9fff]")
KIOSK_THREADS = ("kiosk", "desk", "kiosk-status")  # edge.kiosk.server.KioskService's threads
OUTCOMES = ("match", "delegate_match", "no_match", "not_enrolled", "card_blocked", "poor_quality", "sensor_error")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kiosk-demo")
    broker = PrivateMosquitto(tmp / "mosquitto").start()
    d = Demo(tmp / "demo", holders=8, external_broker=(broker.port, "5"))
    (tmp / "demo").mkdir()
    try:
        d.start()
        h = d.cast.holders
        d.enroll_all([h[0], h[1]])
        # the desk's site holds them by its feed; the pharmacy fetches a card when it is presented
        assert d.stations["desk"].wait_templates(h[0].card, 60) and d.stations["desk"].wait_templates(h[1].card, 60)
        yield d
    finally:
        if not d.stopping.is_set():
            d.stop()
        broker.stop()


def _state(url: str, lang: str) -> dict:
    r = httpx.get(f"{url}/state", params={"lang": lang}, timeout=10)
    assert r.status_code == 200
    return r.json()


def _scripted(demo: Demo, station: str, label: str) -> Event:
    """One visit of the scenario's script (scenario.Day.script), as the day queues it."""
    found = [e for e in demo.day.script() if e.station == station and e.label == label]
    assert found, f"the script has no {label!r} at {station}"
    return found[0]


def _play(demo: Demo, ev: Event, timeout: float = 90.0) -> tuple[object, list[dict]]:
    """Queue `ev` for its desk's worker (as Day.play does) and watch the desk's page meanwhile:
    (the result the desk decided, every distinct state the page showed)."""
    st = demo.stations[ev.station]
    before = st.last_result
    demo.day.queues[ev.station].put(ev)
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = _state(st.kiosk_url, "en")
        if not seen or s["seq"] != seen[-1]["seq"]:
            seen.append(s)
        if st.last_result is not before and s["screen"] in OUTCOMES:
            return st.last_result, seen
        time.sleep(0.05)
    pytest.fail(f"no outcome on the {ev.station} page within {timeout} s; it showed {[s['screen'] for s in seen]}")


def test_every_desk_serves_its_page_on_localhost_in_chinese_and_english(demo):
    urls = [st.kiosk_url for st in demo.stations.values()]
    assert len(urls) == 3 and all(urls)
    parts = [urlsplit(u) for u in urls]
    assert all(p.hostname == "127.0.0.1" and p.path == "/kiosk" for p in parts)
    assert len({p.port for p in parts}) == 3, "each desk its own port"
    for url in urls:
        zh = httpx.get(url, timeout=10)  # no language asked: the desk's first language
        assert zh.status_code == 200 and '<html lang="zh-CN"' in zh.text
        en = httpx.get(url, params={"lang": "en"}, timeout=10)
        assert en.status_code == 200 and '<html lang="en"' in en.text
        state_zh, state_en = _state(url, "zh_CN"), _state(url, "en")
        assert state_zh["lang"] == "zh_CN" and CJK.search(state_zh["title"])
        assert state_en["lang"] == "en" and not CJK.search(state_en["title"])


def test_the_desk_page_shows_the_scenarios_checks(demo):
    honest = _scripted(demo, "desk", "honest patient")
    result, seen = _play(demo, honest)
    screens = [s["screen"] for s in seen]
    assert result.card_number == honest.card
    assert screens[-1] == result.outcome.value, screens  # what the desk decided is what the patient saw
    assert "place_finger" in screens or "reading" in screens, screens  # the page asked for the finger
    zh = CATALOGS.get("zh_CN").gettext
    last = _state(demo.stations["desk"].kiosk_url, "zh_CN")
    assert last["screen"] == result.outcome.value and last["title"] == zh(SCREENS[result.outcome.value].title)
    desk = demo.stations["desk"]
    job = desk.last_job  # the card went through the desk's queue, as from the page's reader
    assert job.source == "reader" and desk.kiosk.desk.get(job.id) is job and job.result is result
    assert result.operator_id == "op-desk"  # the clerk's id still on the record

    stranger = _scripted(demo, "desk", "the same stranger again")  # someone else with 王芳's card
    result, seen = _play(demo, stranger)
    assert result.outcome.value == "no_match"
    en = seen[-1]
    assert en["screen"] == "no_match" and en["tone"] == "bad" and en["staff"] == SCREENS["no_match"].staff
    zh_state = _state(demo.stations["desk"].kiosk_url, "zh_CN")
    assert zh_state["screen"] == "no_match" and zh_state["staff"] == zh(SCREENS["no_match"].staff)
    assert CJK.search(zh_state["staff"])


def _until(url: str, lang: str, ok, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    s = _state(url, lang)
    while time.monotonic() < deadline and not ok(s):
        time.sleep(0.1)
        s = _state(url, lang)
    return s


def test_the_pharmacy_page_shows_it_is_offline_and_what_waits(demo):
    st = demo.stations["pharmacy"]
    # The scenario's cut lasts Day.OFFLINE_S; a loaded machine may need longer for the visit, so the
    # cable stays out until the page has been seen offline, then goes back in.
    st.relay.cut(60)
    try:
        result, _ = _play(demo, _scripted(demo, "pharmacy", "honest patient (offline)"))
        assert result.card_number == demo.cast.holders[1].card
        s = _until(st.kiosk_url, "zh_CN", lambda s: not s["online"] and s["pending"] >= 1, 20)
        assert not s["online"] and s["pending"] >= 1, s
        assert s["status"] == CATALOGS.get("zh_CN").gettext("Offline: results are kept on this station")
        assert str(s["pending"]) in s["pending_text"] and CJK.search(s["pending_text"])
    finally:
        st.relay.cut(0)  # the cable back in
    s = _until(st.kiosk_url, "en", lambda s: s["online"] and s["pending"] == 0, 40)
    assert s["online"] and s["pending"] == 0 and s["pending_text"] == "", s


def test_the_summary_links_every_desk_page(demo):
    lines: list[str] = []
    s = summary(demo)
    print_summary(lines.append, s, True)
    print_kiosks(lines.append, demo)
    for st in demo.stations.values():
        assert s["stations"][st.device_id]["kiosk"] == st.kiosk_url
        assert sum(st.kiosk_url in line for line in lines) >= 2, "in the summary and in the start listing"
        assert any(f"{st.kiosk_url}?lang=en" in line for line in lines)


def test_stopping_the_demo_closes_every_page_and_its_threads(demo):
    ports = [urlsplit(st.kiosk_url).port for st in demo.stations.values()]
    # each desk's page server, desk worker and status watcher (edge.kiosk.server.KioskService)
    ours = [t for st in demo.stations.values()
            for t in (st.kiosk.kiosk.thread, st.kiosk.desk._thread, st.kiosk._watcher)]
    assert all(t.is_alive() for t in ours) and {t.name for t in ours} == set(KIOSK_THREADS)
    demo.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.is_alive() for t in ours):
        time.sleep(0.05)
    assert not [t.name for t in ours if t.is_alive()]
    assert all(port_free(p) for p in ports), "a desk page still holds its port"
