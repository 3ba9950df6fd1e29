"""Runtime messages of the login flow (server/core/auth.py) and of the actions' refusals
(server/crud/alerts.py, suspicion.py) in the viewer's language, placeholders filled in: Chinese
first, English by the switch; the API keeps English."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from fpverify.server.app import create_app
from fpverify.server.crud import users
from fpverify.server.models import Alert
from tests.server.dashboard import seed
from tests.server.dashboard.helpers import CSRF, login

SHOWN = {  # what the login page's error says, per language
    "zh_CN": {
        "throttled": r"登录尝试次数过多，请 (\d+) 秒后再试",
        "frozen": "此账号已冻结，请联系系统管理员",
        "short": "密码至少需要 10 个字符",
        "same": "新密码不能与旧密码相同",
        "one_time": "请设置您自己的密码：此账号使用的是一次性密码",
    },
    "en": {
        "throttled": r"too many login attempts; try again in (\d+) s",
        "frozen": "this account is frozen; ask the system administrator",
        "short": "password must have at least 10 characters",
        "same": "the new password must differ from the old one",
        "one_time": "choose your own password: this account has a one-time password",
    },
}


def _post(c: TestClient, username: str, password: str, **extra):
    token = CSRF.search(c.get("/dashboard/login").text).group(1)
    return c.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token, **extra},
        follow_redirects=False,
    )


def _error(r) -> str:
    m = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text)
    assert m, r.text[:800]
    return m.group(1)


@pytest.fixture(params=["zh_CN", "en"])
def lang_client(request, db):
    with TestClient(create_app(db.settings, db), base_url="http://testserver") as c:
        if request.param == "en":
            c.cookies.set("fpv_lang", "en")  # zh_CN: no cookie, the default
        yield request.param, c


def test_throttled_login_says_how_long_to_wait_in_the_viewers_language(db, lang_client):
    lang, c = lang_client
    for i in range(db.settings.login_free_failures + 1):
        assert _post(c, "supervisor", f"guess {i}").status_code == 401
    r = _post(c, "supervisor", seed.PASSWORD)
    assert r.status_code == 429
    m = re.fullmatch(SHOWN[lang]["throttled"], _error(r))
    assert m and m.group(1) == r.headers["Retry-After"], _error(r)
    if lang == "zh_CN":
        assert "too many" not in r.text


def test_account_messages_in_the_viewers_language(db, lang_client):
    lang, c = lang_client
    with db.session() as s:
        users.create_user(s, "console", "newsup", "one-time-1234", "supervisor", one_time=True)
        s.commit()
    assert _error(_post(c, "newsup", "one-time-1234")) == SHOWN[lang]["one_time"]
    r = _post(c, "newsup", "one-time-1234", new_password="short", new_password2="short")
    assert r.status_code == 403 and _error(r) == SHOWN[lang]["short"]
    r = _post(c, "newsup", "one-time-1234", new_password="one-time-1234", new_password2="one-time-1234")
    assert _error(r) == SHOWN[lang]["same"]


def test_a_frozen_account_is_told_so_in_the_viewers_language(db, lang_client):
    from sqlalchemy import update

    from fpverify.server.models import User

    lang, c = lang_client
    with db.session() as s:
        s.execute(update(User).where(User.username == "auditor").values(frozen=True))
        s.commit()
    r = _post(c, "auditor", seed.PASSWORD)
    assert r.status_code == 403 and _error(r) == SHOWN[lang]["frozen"]


def test_the_api_keeps_english(db):
    with TestClient(create_app(db.settings, db), base_url="http://testserver") as c:
        for i in range(db.settings.login_free_failures + 1):
            c.post("/api/v1/auth/login", json={"username": "supervisor", "password": f"guess {i}"})
        r = c.post("/api/v1/auth/login", json={"username": "supervisor", "password": seed.PASSWORD})
    assert r.status_code == 429 and re.fullmatch(SHOWN["en"]["throttled"], r.json()["detail"]), r.text


REFUSED = {
    "zh_CN": {"again": "该告警已确认", "kind": "未知的疑点类型 'bogus'", "note": "标记为已处理需要填写备注"},
    "en": {
        "again": "alert is already acknowledged",
        "kind": "unknown kind of suspicion point 'bogus'",
        "note": "marking a point handled needs a note",
    },
}


def test_refusals_of_actions_in_the_viewers_language(db, lang_client):
    from urllib.parse import unquote

    from sqlalchemy import select

    lang, c = lang_client
    seed.add_result(db, "C-1002", "no_match", device="rsp-counter-1", site="riverside-pharmacy")
    with db.session() as s:
        alert_id = s.scalar(select(Alert.id))
    csrf = login(c, "supervisor")

    def told(r) -> str:
        assert r.status_code == 303, r.text[:300]
        return unquote(r.headers["location"].split("msg=", 1)[1])

    url = f"/dashboard/alerts/{alert_id}/acknowledge"
    assert told(c.post(url, data={"csrf_token": csrf, "comment": "called"}, follow_redirects=False))
    assert told(c.post(url, data={"csrf_token": csrf}, follow_redirects=False)) == REFUSED[lang]["again"]
    r = c.post(
        "/dashboard/suspicion/handle",
        data={"csrf_token": csrf, "kind": "bogus", "key": "k", "note": "n"},
        follow_redirects=False,
    )
    assert told(r) == REFUSED[lang]["kind"]
    r = c.post(
        "/dashboard/suspicion/handle",
        data={"csrf_token": csrf, "kind": "travel", "key": "k", "note": " "},
        follow_redirects=False,
    )
    assert told(r) == REFUSED[lang]["note"]
