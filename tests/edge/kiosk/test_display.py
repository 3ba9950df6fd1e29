"""What the patient's screen shows for an outcome: a card this station could not fetch is not told
to enroll (the holder may be enrolled at another site), in Chinese and in English."""

from __future__ import annotations

from datetime import UTC, datetime

from fpverify.edge.fetched import NOT_HERE
from fpverify.edge.kiosk.display import KioskDisplay
from fpverify.edge.kiosk.texts import render
from fpverify.edge.outbox import new_result_id
from fpverify.edge.wire import VerificationResult


def result(**kw) -> VerificationResult:
    return VerificationResult(result_id=new_result_id(), device_id="desk-01", site_id="site-a", card_number="C1234567",
                              purpose="registration", captured_at=datetime.now(UTC), attempts=0, **kw)


def _screen(detail: str | None) -> dict:
    display = KioskDisplay(hold_s=60)
    try:
        display.outcome(result(outcome="not_enrolled", detail=detail), "")
        _, view, online, pending = display.hub.snapshot()
        return {lang: render(view, online, pending, lang) for lang in ("zh_CN", "en")}
    finally:
        display.close()


def test_not_enrolled_here_is_its_own_screen_in_both_languages():
    here = _screen(f"{NOT_HERE}: registry unreachable")
    nowhere = _screen(None)
    assert here["en"]["screen"] == "not_enrolled_here" and nowhere["en"]["screen"] == "not_enrolled"
    assert here["zh_CN"]["title"] == "本机暂时无法核验此卡"
    assert "登记指纹" not in here["zh_CN"]["body"] and "register" not in here["en"]["body"]
    assert here["en"]["title"] != nowhere["en"]["title"]
