"""The dashboard in Debian's Chromium (Playwright), against a running registry fed by real stations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from fpverify.demo.cast import PASSWORDS
from fpverify.server.models import Alert, AuditEntry
from tests.server.dashboard.helpers import CHROMIUM, snap

pytestmark = [pytest.mark.slow,  # a browser and a running system: many seconds
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(30000)
    # these tests read English; test_browser_office.py runs the issue-16 items in both languages
    ctx.add_cookies([{"name": "fpv_lang", "value": "en", "domain": "127.0.0.1", "path": "/dashboard"}])
    p = ctx.new_page()
    yield p
    ctx.close()


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORDS[username])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")


def test_failure_appears_then_filter_and_acknowledge(live_demo, page):
    base = live_demo.registry.url
    holder, impostor = live_demo.cast.holders[0], live_demo.cast.impostor
    login(page, base, "supervisor")
    page.wait_for_function("document.querySelector('#trend').width > 0")  # the vendored chart drew
    page.goto(f"{base}/dashboard/failures")
    before = int(page.inner_text("#result-count"))

    # Someone else presses at the pharmacy with the holder's card: the open page shows it by itself.
    result = live_demo.visit("pharmacy", impostor, card=holder.card)
    assert result.outcome.value == "no_match"
    row = page.locator("#results tbody tr.o-no_match", has_text=holder.card)
    row.first.wait_for(timeout=30000)
    assert int(page.inner_text("#result-count")) == before + 1
    assert holder.name in row.first.inner_text()
    snap(page, "failures-live")

    # Filter: the pharmacy's no_match outcomes only.
    page.select_option("select[name=site]", "riverside-pharmacy")
    page.select_option("select[name=outcome]", "no_match")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r".*outcome=no_match.*"))
    rows = page.locator("#results tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        text = rows.nth(i).inner_text()
        assert "no match" in text and "Riverside Pharmacy" in text  # outcomes in words, sites by name

    # Acknowledge the alert the mismatch raised, with a note.
    with live_demo.registry.db.session() as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.result_id == result.result_id))
    assert alert_id is not None
    page.goto(f"{base}/dashboard/alerts")
    form = page.locator(f"tr[data-alert='{alert_id}'] form[action$='/acknowledge']")
    form.locator("input[name=comment]").fill("card retained; patient sent to the insurance office")
    form.locator("button").click()
    page.wait_for_selector(".notice")
    assert f"alert {alert_id} acknowledged" in page.inner_text(".notice")
    assert "acknowledged" in page.inner_text(f"tr[data-alert='{alert_id}'] .pill")
    with live_demo.registry.db.session() as s:
        a = s.get(Alert, alert_id)
        assert (a.status, a.acknowledged_by) == ("acknowledged", "supervisor")
        audited = s.scalar(select(AuditEntry).where(AuditEntry.action == "alert.acknowledge",
                                                    AuditEntry.entity_id == str(alert_id)))
        assert audited is not None and audited.actor == "supervisor"


def test_sysadmin_sees_no_personal_data(live_demo, page):
    base = live_demo.registry.url
    live_demo.visit("desk", live_demo.cast.holders[1])
    live_demo.visit("desk", live_demo.cast.impostor, card=live_demo.cast.holders[1].card)
    assert live_demo.drain(30)
    login(page, base, "admin")
    people = [*live_demo.cast.holders, live_demo.cast.unenrolled]
    for path in ("/dashboard/", "/dashboard/failures?outcome=any", "/dashboard/alerts?status=all",
                 "/dashboard/suspicion", "/dashboard/report"):
        page.goto(base + path)
        text = page.content()
        assert any("masked" in t for t in page.locator(".banner").all_inner_texts())  # next to the demo-mode one
        for p in people:
            assert p.card not in text and p.name not in text, (path, p.card)
    page.goto(f"{base}/dashboard/failures?outcome=any")
    assert "\u2022" * 6 in page.inner_text("#results")  # masked card numbers are there, names are not
    r = page.goto(f"{base}/dashboard/cards/{people[0].card}")
    assert r.status == 403
    assert page.locator("form[action$='/acknowledge']").count() == 0
