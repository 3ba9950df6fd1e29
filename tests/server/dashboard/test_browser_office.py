"""Issue 16 in Debian's Chromium (Playwright), in both languages, against a registry served by uvicorn
on a seeded SQLite database (no stations: the items are about what the office reads)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from fpverify.server.app import create_app
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from fpverify.server.models import Alert, AlertStatus, AuditEntry
from fpverify.services import ServedApp
from tests.server.dashboard import seed
from tests.server.dashboard.helpers import CHROMIUM, snap
from tests.server.helpers import make_settings

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")]

LANGS = ("zh_CN", "en")
T = {  # what each language shows (the catalog's words, server/locale/zh_CN/LC_MESSAGES/dashboard.po)
    "zh_CN": {"html": "zh-CN", "user": "用户名", "operator": "操作员", "poor": "按压质量差", "small": "手指面积太小",
              "handled": "已处理", "mark": "标记为已处理", "refused": "您的角色没有看板页面", "before": "不早于",
              "whole": "筛选需要输入完整卡号", "switch": "English", "rate": "失败率 %", "as_of": "截至"},
    "en": {"html": "en", "user": "User name", "operator": "operator", "poor": "poor press", "small": "finger area too small",
           "handled": "handled", "mark": "Mark handled", "refused": "your role has no dashboard page",
           "before": "is not before", "whole": "the filter needs the whole number", "switch": "中文",
           "rate": "failure rate %", "as_of": "as of"},
}
CARD = {"zh_CN": "C-1003", "en": "C-1004"}  # each language's run handles its own overdue stay


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("office")
    db = Database(settings=make_settings(f"sqlite:///{tmp / 'r.db'}"))
    db.create_all()
    seed.seed_users(db)
    seed.seed_world(db)
    now = datetime.now(UTC)
    with db.session() as s:
        devices_crud.get_device(s, "city-reg-1").name = "Outpatient registration 1"
        _, token = devices_crud.rotate_token(s, "test", "city-ward-3")
        devices_crud.record_presence(s, "city-ward-3", "online", None, 0, "1.0")
        s.commit()
    seed.add_result(db, "C-1001", "poor_quality", detail="small_area; few_minutiae", operator="op-4711")
    old = seed.add_result(db, "C-1002", "no_match", at=now - timedelta(days=5))
    seed.add_result(db, "C-1001", "no_match", at=now - timedelta(minutes=3))
    with db.session() as s:
        a = s.scalar(select(Alert).where(Alert.result_id == old))
        a.status, a.resolved_at, a.resolved_by = AlertStatus.RESOLVED, now - timedelta(days=1), "supervisor"
        s.commit()
    seed.admit(db, "C-1003", hours_ago=24 * 6, interval=4)
    seed.admit(db, "C-1004", hours_ago=24 * 6, interval=4)
    seed.admit(db, "C-1002", hours_ago=3, interval=1)  # admitted today
    # a busy desk whose sensor went bad in its latest 50 checks
    seed.add_results(db, [("city-reg-1", "city-hospital", "match", now - timedelta(hours=10, minutes=i))
                          for i in range(150)]
                     + [("city-reg-1", "city-hospital", "poor_quality" if i % 10 < 3 else "match",
                         now - timedelta(minutes=10 + i)) for i in range(50)])
    served = ServedApp(create_app(db.settings, db)).start()
    try:
        yield {"base": f"http://127.0.0.1:{served.port}", "db": db, "device_token": token, "now": now}
    finally:
        served.stop()
        db.dispose()


def _context(browser, office, lang: str | None, width: int = 1366):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    ctx.set_default_timeout(30000)
    if lang:
        ctx.add_cookies([{"name": "fpv_lang", "value": lang, "url": office["base"] + "/dashboard/"}])
    return ctx


@pytest.fixture(params=LANGS)
def lang(request):
    return request.param


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", seed.PASSWORD)
    page.click("form[action='/dashboard/login'] button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")


@pytest.fixture
def page(browser, office, lang):
    ctx = _context(browser, office, lang)
    p = ctx.new_page()
    yield p
    ctx.close()


def test_chinese_first_and_the_switch_on_every_page(browser, office):
    base = office["base"]
    ctx = _context(browser, office, None)
    p = ctx.new_page()
    p.goto(f"{base}/dashboard/login")
    assert p.get_attribute("html", "lang") == "zh-CN" and T["zh_CN"]["user"] in p.inner_text("main")
    p.click("#lang-switch a:has-text('English')")
    p.wait_for_selector("html[lang=en]")
    assert T["en"]["user"] in p.inner_text("main")
    login(p, base, "supervisor")
    for path in ("/dashboard/", "/dashboard/failures", "/dashboard/alerts", "/dashboard/suspicion",
                 "/dashboard/report", "/dashboard/cards/C-1001"):
        p.goto(base + path)
        assert p.get_attribute("html", "lang") == "en", path
        assert p.locator("#lang-switch a:has-text('中文')").count() == 1, path
    p.click("#lang-switch a:has-text('中文')")
    p.wait_for_selector("html[lang=zh-CN]")
    assert p.url.endswith("/dashboard/cards/C-1001")  # back on the same page
    ctx.close()


def test_chart_labels_and_numbers_in_the_language(page, office, lang):
    login(page, office["base"], "supervisor")
    page.wait_for_function("typeof Chart !== 'undefined' && Chart.getChart('trend') !== undefined")
    labels = page.evaluate("Chart.getChart('trend').data.datasets.map(d => d.label)")
    assert T[lang]["poor"] in labels and T[lang]["rate"] in labels and "poor_quality" not in labels
    assert page.evaluate("Chart.getChart('trend').options.scales.rate.title.text") == T[lang]["rate"]
    snap(page, f"overview-{lang}")


def test_a_past_report_shows_that_day(page, office, lang):
    base = office["base"]
    login(page, base, "auditor")
    ds = office["db"].settings.dashboard
    past = (office["now"].astimezone(ds.tz) - timedelta(days=3)).date().isoformat()
    page.goto(f"{base}/dashboard/report?date={past}")
    cells = page.locator("#report tbody tr", has_text="City Hospital").locator("td").all_inner_texts()
    heads = page.locator("#report thead th").all_inner_texts()
    row = dict(zip(heads, cells, strict=True))
    words = {"zh_CN": ("在院人数", "床旁核验逾期", "未处理完的告警"), "en": ("inpatients", "overdue bedside checks",
                                                                           "alerts still open")}[lang]
    assert [row[w] for w in words] == ["2", "2", "1"]  # C-1002's stay and today's alert are not there yet
    findings = page.inner_text("#findings")
    assert "C-1003" in findings and "C-1004" in findings and "C-1002" not in findings
    assert T[lang]["as_of"] in page.inner_text("main")


def test_operator_names_and_words_in_the_failures_list(page, office, lang):
    base = office["base"]
    login(page, base, "auditor")
    page.goto(f"{base}/dashboard/failures?outcome=poor_quality&card=C-1001")
    heads = page.locator("#results thead th").all_inner_texts()
    assert T[lang]["operator"] in heads
    row = page.locator("#results tbody tr").first
    text = row.inner_text()
    assert "op-4711" in text and "City Hospital" in text and "Outpatient registration 1" in text
    assert T[lang]["poor"] in text and T[lang]["small"] in text and "small_area" not in text
    card = row.locator("td.mono a")
    assert card.evaluate("a => a.getClientRects().length") == 1  # the card number is on one line
    page.goto(f"{base}/dashboard/cards/C-1001")
    assert "op-4711" in page.inner_text("#history")
    snap(page, f"card-{lang}")
    page.context.clear_cookies(name="fpv_session")
    login(page, base, "sysadmin")  # the operator is masked like the card number
    page.goto(f"{base}/dashboard/failures?outcome=poor_quality")
    table = page.inner_text("#results")
    assert "op-4711" not in table and "\u2022" * 6 + "11" in table


def test_a_suspicion_point_marked_handled_stays_listed(page, office, lang):
    base = office["base"]
    login(page, base, "supervisor")
    page.goto(f"{base}/dashboard/suspicion")
    row = page.locator("#overdue tbody tr", has_text=CARD[lang])
    row.locator("input[name=note]").fill(f"ward visited ({lang}): patient present")
    row.locator("button").click()
    page.wait_for_selector(".notice")
    row = page.locator("#overdue tbody tr", has_text=CARD[lang])
    assert T[lang]["handled"] in row.inner_text() and f"ward visited ({lang})" in row.inner_text()
    assert row.locator("button").count() == 0
    poor = page.locator("#poor-devices tbody tr", has_text="Outpatient registration 1")
    cells = poor.locator("td").all_inner_texts()
    assert poor.count() == 1 and cells[2:4] == ["50", "16"]  # 16 poor presses in its latest 50 checks
    snap(page, f"suspicion-{lang}")
    with office["db"].session() as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "suspicion.handle",
                                                 AuditEntry.entity_id.like("overdue:%"),
                                                 AuditEntry.actor == "supervisor")) is not None


def test_stations_show_the_live_cache_version(page, office, lang):
    base = office["base"]
    version = {"zh_CN": 7, "en": 9}[lang]
    r = httpx.get(f"{base}/api/v1/devices/city-ward-3/templates", params={"since": version},
                  headers={"Authorization": f"Bearer {office['device_token']}"})
    assert r.status_code == 200, r.text
    login(page, base, "sysadmin")
    cell = page.locator("#stations tr[data-device='city-ward-3'] td.cache-version")
    assert cell.inner_text().split()[0] == str(version)


def test_a_role_without_pages_is_refused_at_login(page, office, lang):
    base = office["base"]
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=username]", "enroller")
    page.fill("input[name=password]", seed.PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/dashboard/login") and r.request.method == "POST") as resp:
        page.click("form[action='/dashboard/login'] button[type=submit]")
    assert resp.value.status == 403
    assert T[lang]["refused"] in page.inner_text(".error")
    assert page.context.cookies() and all(c["name"] != "fpv_session" for c in page.context.cookies())
    page.goto(f"{base}/dashboard/")  # no session was made: the login page, not another refusal
    assert "/dashboard/login" in page.url


def test_filters_that_cannot_match_say_so(page, office, lang):
    base = office["base"]
    login(page, base, "auditor")
    page.goto(f"{base}/dashboard/failures")
    page.fill("input[name=since]", "2026-03-02T10:00")
    page.fill("input[name=until]", "2026-03-01T10:00")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r".*until=.*"))
    assert T[lang]["before"] in page.inner_text(".error")
    page.goto(f"{base}/dashboard/failures")
    page.fill("input[name=card]", "C-10")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r".*card=C-10.*"))
    assert T[lang]["whole"] in page.inner_text(".error")


@pytest.mark.parametrize("width, media", [(1366, "screen"), (1032, "print")])  # 1032 px: A4 landscape less 12 mm
def test_the_daily_report_fits_a4_landscape_and_a_1366_px_screen(page, office, lang, width, media):
    base = office["base"]
    login(page, base, "supervisor")
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(media=media)
    page.goto(f"{base}/dashboard/report")
    over = page.evaluate("""() => [document.documentElement.scrollWidth,
        document.querySelector('#report').getBoundingClientRect().right,
        document.querySelector('#findings').getBoundingClientRect().right]""")
    assert max(over) <= width, (over, width)
    if media == "print":
        pdf = page.pdf(format="A4", landscape=True)
        assert pdf[:4] == b"%PDF"
    snap(page, f"report-{media}-{lang}")
