"""Dashboard pages through the HTTP stack (no browser): sessions, CSRF, roles, queries, report, CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fpverify.server.app import create_app
from fpverify.server.core.config import DashboardSettings
from fpverify.server.db import Database
from fpverify.server.models import Alert, AuditEntry
from tests.server.dashboard import seed
from tests.server.dashboard.helpers import CSRF, login
from tests.server.helpers import make_settings


def test_pages_need_a_session_and_login_redirects_back(client):
    r = client.get("/dashboard/failures?outcome=any", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login?next=")
    page = client.get(r.headers["location"])
    token = CSRF.search(page.text).group(1)
    r = client.post("/dashboard/login", data={"username": "auditor", "password": seed.PASSWORD, "csrf_token": token,
                                              "next": "/dashboard/failures?outcome=any"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/failures?outcome=any"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/dashboard" in cookie


def test_login_refuses_bad_password_missing_csrf_and_open_redirect(client):
    page = client.get("/dashboard/login")
    token = CSRF.search(page.text).group(1)
    r = client.post("/dashboard/login", data={"username": "auditor", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and "invalid user name or password" in r.text
    client.cookies.clear()
    client.cookies.set("fpv_lang", "en")
    r = client.post("/dashboard/login", data={"username": "auditor", "password": seed.PASSWORD, "csrf_token": "x"})
    assert r.status_code == 403 and "login form expired" in r.text
    page = client.get("/dashboard/login?next=https://evil.example/")
    assert 'value="/dashboard/"' in page.text and "evil" not in page.text


def test_enroller_gets_no_dashboard(client):
    page = client.get("/dashboard/login")
    r = client.post("/dashboard/login", data={"username": "enroller", "password": seed.PASSWORD,
                                              "csrf_token": CSRF.search(page.text).group(1)})
    assert r.status_code == 403 and "insurance office" in r.text


def test_logout_revokes_the_token(client):
    csrf = login(client, "auditor")
    session = client.cookies.get("fpv_session")
    r = client.post("/dashboard/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("fpv_session", session, path="/dashboard")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303
    # the same token is a registry token: the API refuses it too
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {session}"}).status_code == 401


def test_failures_filter_and_counts(db, client):
    now = datetime.now(UTC)
    seed.add_result(db, "C-1001", "match", at=now - timedelta(minutes=30))
    seed.add_result(db, "C-1002", "no_match", device="rsp-counter-1", site="riverside-pharmacy",
                    at=now - timedelta(minutes=20))
    seed.add_result(db, "C-1003", "poor_quality", device="city-ward-3", purpose="bedside", quality=12,
                    at=now - timedelta(minutes=10))
    login(client, "auditor")
    page = client.get("/dashboard/failures")
    assert re.search(r'id="result-count">2<', page.text)  # match is not a failure
    assert "Li Wei" in page.text and "Zhang Min" in page.text and "Wang Fang" not in page.text
    page = client.get("/dashboard/failures?outcome=any")
    assert re.search(r'id="result-count">3<', page.text)
    page = client.get("/dashboard/failures?site=riverside-pharmacy")
    assert re.search(r'id="result-count">1<', page.text) and "C-1002" in page.text and "C-1003" not in page.text
    page = client.get("/dashboard/failures?outcome=any&card=C-1001")
    assert re.search(r'id="result-count">1<', page.text)
    since = (now - timedelta(minutes=15)).astimezone(seed_tz()).strftime("%Y-%m-%dT%H:%M")
    page = client.get(f"/dashboard/failures?outcome=any&since={since}")
    assert re.search(r'id="result-count">1<', page.text) and "C-1003" in page.text
    # bad input: a clear message, not a server error
    page = client.get("/dashboard/failures?since=yesterday&outcome=bogus")
    assert page.status_code == 200 and "not a date/time" in page.text and "unknown value" in page.text
    rows = list(csv.reader(io.StringIO(client.get("/dashboard/failures.csv?outcome=any").text.lstrip("\ufeff"))))
    assert rows[0][:5] == ["at", "site", "device", "operator", "card"] and len(rows) == 4


def seed_tz():
    return DashboardSettings().tz


def test_card_page_shows_metadata_never_images(db, client):
    seed.add_result(db, "C-1001", "match")
    login(client, "supervisor")
    page = client.get("/dashboard/cards/C-1001")
    assert page.status_code == 200 and "Wang Fang" in page.text and "no images are kept" in page.text
    assert "<img" not in page.text and "base64" not in page.text
    assert client.get("/dashboard/cards/NOPE-1").status_code == 404


def test_supervisor_acknowledges_and_resolves_audited(db, client):
    seed.add_result(db, "C-1002", "no_match", device="rsp-counter-1", site="riverside-pharmacy")
    with db.session() as s:
        alert_id = s.scalar(select(Alert.id))
    csrf = login(client, "supervisor")
    r = client.post(f"/dashboard/alerts/{alert_id}/acknowledge", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    r = client.post(f"/dashboard/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf, "comment": "called"},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.text
    r = client.post(f"/dashboard/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf, "comment": "called"})
    assert r.status_code == 200 and f"alert {alert_id} acknowledged" in r.text
    r = client.post(f"/dashboard/alerts/{alert_id}/resolve", data={"csrf_token": csrf, "comment": " "})
    assert "needs a comment" in r.text
    r = client.post(f"/dashboard/alerts/{alert_id}/resolve", data={"csrf_token": csrf, "comment": "impostor reported"})
    assert f"alert {alert_id} resolved" in r.text
    r = client.post(f"/dashboard/alerts/{alert_id}/resolve", data={"csrf_token": csrf, "comment": "again"})
    assert "alert is resolved" in r.text
    # both notes stay on the page after the resolution, oldest first, with who wrote them
    page = client.get("/dashboard/alerts?status=all").text
    row = page.split(f'data-alert="{alert_id}"')[1].split("</tr>")[0]
    assert row.index("called") < row.index("impostor reported") and row.count("· supervisor ·") == 2
    with db.session() as s:
        a = s.get(Alert, alert_id)
        assert (a.status, a.acknowledged_by, a.resolved_by, a.comment) == ("resolved", "supervisor", "supervisor",
                                                                            "impostor reported")
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "alert")))
    assert actions == ["alert.acknowledge", "alert.resolve"]
    with db.session() as s:
        notes = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "alert_note")))
    assert notes == ["alert.note", "alert.note"]


def test_auditor_reads_but_cannot_act(db, client):
    seed.add_result(db, "C-1002", "no_match")
    with db.session() as s:
        alert_id = s.scalar(select(Alert.id))
    csrf = login(client, "auditor")
    page = client.get("/dashboard/alerts")
    assert "Li Wei" in page.text and "/acknowledge" not in page.text
    r = client.post(f"/dashboard/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf})
    assert r.status_code == 403 and "only supervisors" in r.text
    with db.session() as s:
        assert s.get(Alert, alert_id).status == "open"


def test_sysadmin_sees_no_personal_data(db, client):
    now = datetime.now(UTC)
    for card in seed.NAMES:
        seed.add_result(db, card, "no_match", at=now - timedelta(minutes=5))
        seed.add_result(db, card, "match", device="rsp-counter-1", site="riverside-pharmacy", at=now)
    seed.admit(db, "C-1004", hours_ago=10)
    login(client, "sysadmin")
    pages = ["/dashboard/", "/dashboard/failures?outcome=any", "/dashboard/alerts?status=all", "/dashboard/suspicion",
             "/dashboard/report", "/dashboard/report.csv", "/dashboard/failures.csv?outcome=any"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        for card, name in seed.NAMES.items():
            assert card not in r.text and name not in r.text, (path, card)
    assert client.get("/dashboard/cards/C-1001").status_code == 403
    assert client.get("/dashboard/report-findings.csv").status_code == 403
    assert "may not search by card" in client.get("/dashboard/failures?card=C-1001").text


def test_suspicion_points(db, client):
    now = datetime.now(UTC)
    seed.add_result(db, "C-1001", "match", at=now - timedelta(minutes=12))
    seed.add_result(db, "C-1001", "no_match", device="rsp-counter-1", site="riverside-pharmacy",
                    at=now - timedelta(minutes=4))
    seed.add_result(db, "C-1002", "no_match", at=now - timedelta(hours=30))
    seed.add_result(db, "C-1002", "no_match", at=now - timedelta(hours=2))
    for _ in range(9):  # 9 of the desk's 12 checks (the rule needs at least poor_min_checks)
        seed.add_result(db, "C-1003", "poor_quality", device="city-ward-3", purpose="bedside", quality=5)
    for _ in range(3):
        seed.add_result(db, "C-1003", "match", device="city-ward-3", purpose="bedside")
    seed.admit(db, "C-1004", hours_ago=10, interval=4)  # never checked: overdue
    seed.admit(db, "C-1003", hours_ago=10, interval=24)  # checked and within the interval
    login(client, "auditor")
    page = client.get("/dashboard/suspicion").text
    travel = page.split('id="travel"')[1].split("</table>")[0]
    assert "C-1001" in travel and "C-1002" not in travel and "Riverside Pharmacy" in travel
    repeats = page.split('id="repeats"')[1].split("</table>")[0]
    assert "C-1002" in repeats and "C-1001" not in repeats
    overdue = page.split('id="overdue"')[1].split("</table>")[0]
    assert "C-1004" in overdue and "C-1003" not in overdue
    devices = page.split('id="poor-devices"')[1].split("</table>")[0]
    assert "city-ward-3" in devices and "75%" in devices and "city-reg-1" not in devices


def test_daily_report_counts_the_period_and_csv(db, client):
    from fpverify.server.dashboard import queries
    ds = DashboardSettings()
    day = queries.due_report_date(datetime.now(UTC), ds.tz, ds.report_cutoff)
    start, end = queries.report_period(day, ds.tz, ds.report_cutoff)
    seed.add_result(db, "C-1001", "match", at=start + timedelta(minutes=1))
    seed.add_result(db, "C-1002", "no_match", at=start + timedelta(minutes=2))
    seed.add_result(db, "C-1003", "match", device="city-ward-3", purpose="bedside", at=start + timedelta(minutes=3))
    seed.add_result(db, "C-1001", "match", at=start - timedelta(minutes=1))  # the previous report's
    seed.add_result(db, "C-1001", "match", device="rsp-counter-1", site="riverside-pharmacy", at=end)  # the next's
    login(client, "supervisor")
    page = client.get(f"/dashboard/report?date={day.isoformat()}")
    assert page.status_code == 200 and "Daily identity-check report" in page.text
    r = client.get(f"/dashboard/report.csv?date={day.isoformat()}")
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    rows = {row["site"]: row for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))}
    city, pharmacy = rows["city-hospital"], rows["riverside-pharmacy"]
    assert (city["verifications"], city["match"], city["no_match"]) == ("3", "2", "1")
    assert (city["bedside checks"], city["bedside confirmed"], city["alerts raised"], city["cards retained"]) == \
        ("1", "1", "1", "1")
    assert pharmacy["verifications"] == "0"
    findings = client.get(f"/dashboard/report-findings.csv?date={day.isoformat()}").text
    assert "C-1002" in findings and "Li Wei" in findings
    assert client.get("/dashboard/report?date=2026-13-45").status_code == 422


def test_csv_cells_cannot_start_formulas(db, client):
    from fpverify.server.dashboard.routes.common import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell("-3") == "-3" and csv_cell("@x") == "'@x"


def test_security_headers_and_static_chart_library(client):
    login(client, "auditor")
    r = client.get("/dashboard/")
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    js = client.get("/dashboard/static/vendor/chart.umd.min.js")
    assert js.status_code == 200 and "Chart" in js.text[:2000]
    # the API is untouched by the dashboard's handlers
    assert client.get("/api/v1/results").status_code == 401


# ---- logins and modes --------------------------------------------------------------------------

def _post_login(client: TestClient, username: str, password: str, **extra):
    page = client.get("/dashboard/login")
    token = CSRF.search(page.text).group(1)
    return client.post("/dashboard/login", data={"username": username, "password": password, "csrf_token": token,
                                                 **extra}, follow_redirects=False)


def test_dashboard_login_is_throttled_per_client_on_postgres(pg_url):
    db = Database(settings=make_settings(pg_url))
    db.migrate()
    seed.seed_users(db)
    app = create_app(db.settings, db)
    free = db.settings.login_free_failures
    with TestClient(app, client=("203.0.113.5", 1)) as attacker, TestClient(app, client=("10.2.0.3", 1)) as desk:
        codes = [_post_login(attacker, "supervisor", f"guess {i}").status_code for i in range(free + 1)]
        r = _post_login(attacker, "supervisor", seed.PASSWORD)  # the right password, too late
        assert codes == [401] * (free + 1) and r.status_code == 429, codes
        assert int(r.headers["Retry-After"]) >= 1 and "登录尝试次数过多" in r.text  # zh-CN by default
        assert _post_login(desk, "supervisor", seed.PASSWORD).status_code == 303  # the real user gets in
    with db.session() as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("login%"))))
    assert actions == {"login", "login.failed", "login.lockout", "login.throttled"}
    db.dispose()


def test_one_time_password_must_be_replaced_on_the_dashboard(db, client):
    from fpverify.server.crud import users

    with db.session() as s:
        users.create_user(s, "console", "newsup", "one-time-1234", "supervisor", one_time=True)
        s.commit()
    r = _post_login(client, "newsup", "one-time-1234")
    assert r.status_code == 403 and 'name="new_password"' in r.text
    r = _post_login(client, "newsup", "one-time-1234", new_password="mine, long one", new_password2="mine, long 0ne")
    assert r.status_code == 422 and "differ" in r.text
    r = _post_login(client, "newsup", "one-time-1234", new_password="mine, long one", new_password2="mine, long one")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
    assert _post_login(client, "newsup", "one-time-1234").status_code == 401
    assert _post_login(client, "newsup", "mine, long one").status_code == 303


@pytest.mark.parametrize("mode,banner", [("demo", "演示模式"), ("development", "开发模式"), ("production", None)])
def test_every_page_says_when_the_registry_is_not_in_production(tmp_path, mode, banner):
    d = Database(settings=make_settings(f"sqlite:///{tmp_path / 'm.db'}", mode=mode))
    d.create_all()
    seed.seed_users(d)
    with TestClient(create_app(d.settings, d), base_url="http://testserver") as c:
        pages = [c.get("/dashboard/login")]
        login(c, "auditor")
        pages += [c.get(p) for p in ("/dashboard/", "/dashboard/failures", "/dashboard/alerts",
                                     "/dashboard/suspicion", "/dashboard/report", "/dashboard/cards/NOPE-1")]
    for page in pages:
        if banner:
            assert 'id="mode-banner"' in page.text and banner in page.text and "mode" in page.text, page.url
        else:
            assert 'id="mode-banner"' not in page.text, page.url
    d.dispose()
