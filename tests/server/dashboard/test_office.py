"""Issue 16 through the HTTP stack: Chinese first, past reports as they were, the operator column,
names and words instead of codes, suspicion points handled, the poor-press rule, live cache
versions, refused roles and filters that cannot match. test_browser_office.py drives the same in
Chromium, in both languages."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy import select

from fpverify.server.crud import devices as devices_crud
from fpverify.server.dashboard import i18n, queries, suspicion_rules
from fpverify.server.models import Alert, AlertStatus, AuditEntry, SuspicionMark
from tests.server.dashboard import seed
from tests.server.dashboard.catalog import message_ids
from tests.server.dashboard.helpers import CSRF, login

PLACEHOLDER = re.compile(r"\{(\w*)\}")


def test_catalog_translates_every_message():
    po = i18n.CATALOGS.po_path("zh_CN")
    with po.open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    ids = message_ids()
    assert len(ids) > 200  # the finder found the templates' and routes' messages
    for mid in sorted(ids):
        m = catalog.get(mid)
        assert m is not None and m.string and not m.fuzzy, f"no Chinese for {mid!r} in {po}"
        assert sorted(PLACEHOLDER.findall(m.string)) == sorted(PLACEHOLDER.findall(mid)), mid


def _csv(client: TestClient, url: str) -> list[dict]:
    r = client.get(url)
    assert r.status_code == 200, r.text[:300]
    return list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))


def test_chinese_by_default_and_english_by_the_switch(db):
    seed.add_result(db, "C-1001", "poor_quality", detail="small_area; few_minutiae")
    with TestClient(create_app_for(db), base_url="http://testserver") as c:
        page = c.get("/dashboard/login")
        assert '<html lang="zh-CN">' in page.text and "用户名" in page.text and "User name" not in page.text
        switch = re.search(r'href="(/dashboard/language\?to=en[^"]*)"', page.text).group(1).replace("&amp;", "&")
        r = c.get(switch, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
        assert "fpv_lang=en" in r.headers["set-cookie"]
        page = c.get(r.headers["location"])
        assert '<html lang="en">' in page.text and "User name" in page.text
        login(c, "auditor")
        en = c.get("/dashboard/failures").text
        assert "finger area too small; too few fingerprint features" in en and "small_area" not in en
        assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", en)  # Babel's English date
        c.get("/dashboard/language?to=zh_CN&next=/dashboard/failures")
        zh = c.get("/dashboard/failures").text
        assert "手指面积太小；指纹特征点太少" in zh and "按压质量差" in zh and "small_area" not in zh
        assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", zh)  # Babel's Chinese date
        assert "Failures" not in zh.split("<main>")[1]


def create_app_for(db):
    from fpverify.server.app import create_app

    return create_app(db.settings, db)


def test_a_past_report_shows_that_day_as_it_was(db, client):
    now = datetime.now(UTC)
    old = seed.add_result(db, "C-1001", "no_match", at=now - timedelta(days=5))  # open then, resolved yesterday
    seed.add_result(db, "C-1002", "no_match", at=now - timedelta(minutes=5))  # today's open alert
    with db.session() as s:
        a = s.scalar(select(Alert).where(Alert.result_id == old))
        a.status, a.resolved_at, a.resolved_by = AlertStatus.RESOLVED, now - timedelta(days=1), "supervisor"
        s.commit()
    seed.admit(db, "C-1003", hours_ago=24 * 6, interval=4, discharged_hours_ago=24)  # in hospital then
    seed.admit(db, "C-1004", hours_ago=2, interval=1)  # admitted today, overdue now
    login(client, "auditor")
    ds = db.settings.dashboard
    past = (now.astimezone(ds.tz) - timedelta(days=3)).date()
    city = {r["site"]: r for r in _csv(client, f"/dashboard/report.csv?date={past.isoformat()}")}["city-hospital"]
    assert (city["inpatients"], city["overdue bedside checks"], city["alerts still open"]) == ("1", "1", "1")
    findings = _csv(client, f"/dashboard/report-findings.csv?date={past.isoformat()}")
    assert [f["card"] for f in findings] == ["C-1003"]  # the stay of then; C-1004 was not yet admitted
    today = queries.due_report_date(now, ds.tz, ds.report_cutoff)
    city = {r["site"]: r for r in _csv(client, f"/dashboard/report.csv?date={today.isoformat()}")}["city-hospital"]
    assert (city["inpatients"], city["overdue bedside checks"], city["alerts still open"]) == ("1", "1", "1")
    assert {f["card"] for f in _csv(client, f"/dashboard/report-findings.csv?date={today.isoformat()}")} == \
        {"C-1002", "C-1004"}
    page = client.get(f"/dashboard/report?date={past.isoformat()}").text
    assert "as of" in page and "C-1004" not in page and "C-1002" not in page


def test_the_operator_is_shown_and_masked_like_card_numbers(db, client):
    seed.add_result(db, "C-1001", "no_match", operator="op-4711")
    login(client, "auditor")
    page = client.get("/dashboard/failures").text
    assert "<th>operator</th>" in page and "op-4711" in page
    assert "op-4711" in client.get("/dashboard/cards/C-1001").text
    assert _csv(client, "/dashboard/failures.csv")[0]["operator"] == "op-4711"
    client.cookies.delete("fpv_session", path="/dashboard")
    login(client, "sysadmin")
    page = client.get("/dashboard/failures").text
    assert "op-4711" not in page and "\u2022" * 6 + "11" in page
    row = _csv(client, "/dashboard/failures.csv")[0]
    assert row["operator"] == "\u2022" * 6 + "11" and "op-4711" not in str(row)


def test_sites_and_devices_by_name_outcomes_in_words(db, client):
    with db.session() as s:
        devices_crud.get_device(s, "city-reg-1").name = "Outpatient registration 1"
        s.commit()
    seed.add_result(db, "C-1001", "poor_quality", detail="small_area; few_minutiae")
    login(client, "supervisor")
    for lang, words in (("en", ("City Hospital", "Outpatient registration 1", "poor press", "finger area too small")),
                        ("zh_CN", ("City Hospital", "Outpatient registration 1", "按压质量差", "手指面积太小"))):
        client.cookies.set("fpv_lang", lang)
        table = client.get("/dashboard/failures").text.split('id="results"')[1]
        for w in words:
            assert w in table, (lang, w)
        assert "small_area" not in table and ">poor_quality<" not in table and ">city-reg-1<" not in table
        assert 'class="mono nowrap"' in table  # card numbers do not wrap


def _handle(client: TestClient, token: str, kind: str, key: str, note: str):
    return client.post("/dashboard/suspicion/handle", data={"csrf_token": token, "kind": kind, "key": key,
                                                            "note": note})


def test_a_suspicion_point_is_marked_handled_audited_and_stays_listed(db, client):
    seed.admit(db, "C-1004", hours_ago=10, interval=4)
    token = login(client, "supervisor")
    page = client.get("/dashboard/suspicion").text
    key = re.search(r'<tr data-key="([^"]+)"><td class="mono nowrap"><a href="/dashboard/cards/C-1004"', page).group(1)
    r = _handle(client, token, "overdue", key, "")
    assert "needs a note" in r.text
    r = _handle(client, token, "overdue", key, "ward visited: patient present, checked at the bed")
    assert r.status_code == 200 and "marked handled" in r.text
    overdue = r.text.split('id="overdue"')[1].split("</table>")[0]
    assert "C-1004" in overdue and "handled" in overdue and "ward visited" in overdue and "Mark handled" not in overdue
    assert "already marked handled" in _handle(client, token, "overdue", key, "again").text
    with db.session() as s:
        mark = s.scalar(select(SuspicionMark))
        assert (mark.kind, mark.key, mark.handled_by) == ("overdue", key, "supervisor")
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "suspicion.handle"))
        assert entry is not None and entry.actor == "supervisor" and entry.entity_id == f"overdue:{key}"
    client.cookies.delete("fpv_session", path="/dashboard")
    token = login(client, "auditor")  # reads, cannot mark
    assert _handle(client, token, "overdue", key + "x", "note").status_code == 403
    assert "ward visited" in client.get("/dashboard/suspicion").text


def test_poor_press_rule_with_realistic_traffic(db):
    """A busy desk whose sensor went bad in its last 50 checks is flagged although its 24 h share is
    low; a quiet desk with 3 poor presses out of 3 (too few to judge) and a busy clean desk are not."""
    now = datetime.now(UTC)
    rows = []
    for i in range(150):  # city-reg-1: a clean morning ...
        rows.append(("city-reg-1", "city-hospital", "match", now - timedelta(hours=10, minutes=i)))
    for i in range(50):  # ... then 15 poor presses in its latest 50 checks
        rows.append(("city-reg-1", "city-hospital", "poor_quality" if i % 10 < 3 else "match",
                     now - timedelta(minutes=i)))
    for i in range(3):
        rows.append(("city-ward-3", "city-hospital", "poor_quality", now - timedelta(minutes=i)))
    for i in range(300):  # the pharmacy: busy, 2% poor presses (7 of them, more than the minimum count)
        rows.append(("rsp-counter-1", "riverside-pharmacy", "poor_quality" if i % 50 == 0 else "match",
                     now - timedelta(minutes=i)))
    for i in range(300, 302):
        rows.append(("rsp-counter-1", "riverside-pharmacy", "poor_quality", now - timedelta(minutes=i)))
    seed.add_results(db, rows)
    ds = db.settings.dashboard
    with db.session() as s:
        flagged = suspicion_rules.poor_quality_devices(s, now - timedelta(hours=24), ds)
    assert [(d.device_id, d.total, d.poor) for d in flagged] == [("city-reg-1", 50, 15)]


def test_stations_list_the_cache_version_of_their_latest_pull(db, client):
    with db.session() as s:
        _, device_token = devices_crud.rotate_token(s, "test", "city-ward-3")
        devices_crud.record_presence(s, "city-ward-3", "online", None, 0, "1.0")  # at connect: empty cache
        s.commit()
    login(client, "sysadmin")

    def shown() -> str:
        page = client.get("/dashboard/").text
        row = page.split('data-device="city-ward-3"')[1].split("</tr>")[0]
        return re.search(r'class="num cache-version">(\d+|–)', row).group(1)

    assert shown() == "0"
    r = client.get("/api/v1/devices/city-ward-3/templates?since=7", headers={"Authorization": f"Bearer {device_token}"})
    assert r.status_code == 200, r.text
    assert shown() == "7"  # what the station holds now, not what it had at connect


@pytest.mark.parametrize("lang, reason", [("en", "your role has no dashboard page"),
                                          ("zh_CN", "您的角色没有看板页面")])
def test_a_role_without_pages_is_refused_at_login(client, lang, reason):
    client.cookies.set("fpv_lang", lang)
    page = client.get("/dashboard/login")
    r = client.post("/dashboard/login", data={"username": "enroller", "password": seed.PASSWORD,
                                              "csrf_token": CSRF.search(page.text).group(1)}, follow_redirects=False)
    assert r.status_code == 403 and reason in r.text
    assert "fpv_session" not in r.headers.get("set-cookie", "")  # no session: no loop of refused pages


@pytest.mark.parametrize("lang, words", [("en", ("is not before", "the filter needs the whole number")),
                                         ("zh_CN", ("不早于", "筛选需要输入完整卡号"))])
def test_filters_that_cannot_match_say_so(db, client, lang, words):
    seed.add_result(db, "C-1001", "no_match")
    client.cookies.set("fpv_lang", lang)
    login(client, "auditor")
    page = client.get("/dashboard/failures?since=2026-03-02T10:00&until=2026-03-01T10:00").text
    assert words[0] in page.split('role="alert"')[1]
    page = client.get("/dashboard/failures?card=C-10").text
    alert = page.split('role="alert"')[1].split("</p>")[0]
    assert words[1] in alert and "C-10" in alert and "4" in alert  # four card numbers contain it
    assert 'role="alert"' not in client.get("/dashboard/failures?card=C-1001").text
