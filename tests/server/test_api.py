"""API flows as stations and staff use them (contract of CONTRACTS.md), plus the feed notification."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import insert, select

from fpverify.edge import wire
from fpverify.server.app import create_app
from fpverify.server.db import Database
from fpverify.server.models import Alert, VerificationRecord
from fpverify.services import BROKER_CONF
from tests.server.helpers import PASSWORD, auth, make_settings, seed_users, upload_body

P = "/api/v1"


def make_holder(client, tokens, card: str, consent: bool = True) -> None:
    r = client.post(f"{P}/cardholders", json={"card_number": card, "name": "Zhang San", "national_id": "1101011990"},
                    headers=auth(tokens["enroller"]))
    assert r.status_code == 201, r.text
    if consent:
        r = client.post(f"{P}/cardholders/{card}/consents", headers=auth(tokens["enroller"]),
                        json={"given_at": datetime.now(UTC).isoformat(), "scope": "fingerprint", "witnessed_by": "op-7"})
        assert r.status_code == 201, r.text


def test_enrollment_contract_and_feed(client, tokens):
    enr = auth(tokens["enroller"])
    r = client.post(f"{P}/enrollments", json=upload_body("C5000"), headers=enr)
    assert r.status_code == 409  # not registered
    make_holder(client, tokens, "C5000", consent=False)
    assert client.post(f"{P}/enrollments", json=upload_body("C5000"), headers=enr).status_code == 409  # no consent
    make_holder(client, tokens, "C5001")
    bad = upload_body("C5001")
    bad["fingers"][0]["templates"] = ["!!not base64!!"] * 3
    assert client.post(f"{P}/enrollments", json=bad, headers=enr).status_code == 422
    body = upload_body("C5001")
    r = client.post(f"{P}/enrollments", json=body, headers=enr)
    assert r.status_code == 201, r.text
    out = r.json()
    # enrolled through dev-1: assigned to its site (a hold and the card status), each add once for
    # the registry's log and once for the site (issue 18)
    assert out["status"] == "enrolled" and len(out["template_ids"]) == 3 and out["feed_version"] == 8
    assert client.post(f"{P}/enrollments", json=body, headers=enr).json() == out  # idempotent re-upload
    feed = wire.TemplateFeed.model_validate_json(
        client.get(f"{P}/devices/dev-1/templates?since=0", headers=auth(tokens["device"])).content)
    assert feed.version == 8 and [c.op for c in feed.changes] == ["hold", "card", "add", "add", "add"]
    assert {c.template_id for c in feed.changes if c.op == "add"} == set(out["template_ids"])
    assert client.get(f"{P}/devices/dev-1/templates?since=8", headers=auth(tokens["device"])).json()["changes"] == []
    # staff see metadata only, never template bytes
    metas = client.get(f"{P}/cardholders/C5001/templates", headers=auth(tokens["auditor"])).json()
    assert len(metas) == 3 and all("data" not in m and "template" not in m for m in metas)


def test_alert_handling_and_freeze(client, tokens, db):
    rid = uuid.uuid4()
    with db.session() as s:
        s.execute(insert(VerificationRecord).values(
            result_id=rid, device_id="dev-1", site_id="site-1", card_number="C9", outcome="no_match",
            purpose="billing", captured_at=datetime.now(UTC), received_at=datetime.now(UTC), attempts=1))
        s.add(Alert(kind="no_match", result_id=rid, card_number="C9", device_id="dev-1", site_id="site-1",
                    card_retained=True, raised_at=datetime.now(UTC), status="open"))
        s.commit()
    sup = auth(tokens["supervisor"])
    [a] = client.get(f"{P}/alerts?status=open", headers=auth(tokens["auditor"])).json()
    assert a["card_retained"]
    assert client.post(f"{P}/alerts/{a['id']}/resolve", json={}, headers=sup).status_code == 422  # comment needed
    r = client.post(f"{P}/alerts/{a['id']}/acknowledge", json={"comment": "calling the office"}, headers=sup)
    assert r.json()["status"] == "acknowledged"
    r = client.post(f"{P}/alerts/{a['id']}/resolve", json={"comment": "impostor; card kept"}, headers=sup)
    assert r.json()["status"] == "resolved" and r.json()["resolved_by"] == "supervisor"
    # freezing an account kills its token immediately and blocks login
    users = client.get(f"{P}/users", headers=auth(tokens["sysadmin"])).json()
    enr_id = next(u["id"] for u in users if u["username"] == "enroller")
    assert client.post(f"{P}/users/{enr_id}/freeze", headers=auth(tokens["sysadmin"])).json()["frozen"]
    assert client.get(f"{P}/auth/me", headers=auth(tokens["enroller"])).status_code == 401
    r = client.post(f"{P}/auth/login", data={"username": "enroller", "password": PASSWORD})  # form login
    assert r.status_code == 403 and "frozen" in r.json()["detail"]
    entries = client.get(f"{P}/audit?entity=alert", headers=auth(tokens["auditor"])).json()
    assert [e["action"] for e in entries] == ["alert.acknowledge", "alert.resolve"]
    assert client.get(f"{P}/audit/verify", headers=auth(tokens["auditor"])).json()["ok"]


# ---- logins, as an attacker tries them, on PostgreSQL ---------------------------------------------

def _login(c, username: str, password: str):
    return c.post(f"{P}/auth/login", json={"username": username, "password": password})


def _pg_client(db, address: str):
    return TestClient(create_app(db.settings, db), client=(address, 40000))


def test_one_message_for_every_failure_state_only_after_the_right_password(pg_db):
    ids = seed_users(pg_db, extra_supervisor=False)
    with _pg_client(pg_db, "10.1.0.1") as admin, _pg_client(pg_db, "10.1.0.2") as c:
        token = _login(admin, "sysadmin", PASSWORD).json()["access_token"]
        admin.post(f"{P}/users/{ids['enroller']}/freeze", headers=auth(token))
        answers = [_login(c, name, pw) for name, pw in
                   (("nobody-here", "whatever pw"), ("auditor", "wrong pw"), ("enroller", "wrong pw"))]
        assert {(r.status_code, r.json()["detail"]) for r in answers} == {(401, "invalid user name or password")}
        r = _login(c, "enroller", PASSWORD)  # right password: now the state may be told
        assert r.status_code == 403 and "frozen" in r.json()["detail"]
        assert _login(c, "x", "").status_code == 422


def test_an_attacker_who_knows_a_user_name_cannot_lock_the_user_out(pg_db):
    seed_users(pg_db, extra_supervisor=False)
    free = pg_db.settings.login_free_failures
    with _pg_client(pg_db, "203.0.113.66") as attacker, _pg_client(pg_db, "10.1.0.7") as desk:
        answers = [_login(attacker, "auditor", f"guess {i}") for i in range(free + 2)]
        assert [r.status_code for r in answers] == [401] * (free + 1) + [429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # the attacker is slowed, and learns nothing: an unknown name answers the same way
        unknown = [_login(attacker, "no-such-user", f"guess {i}") for i in range(free + 2)]
        assert [r.status_code for r in unknown] == [r.status_code for r in answers]
        assert unknown[-1].json()["detail"] == answers[-1].json()["detail"].replace(
            answers[-1].headers["Retry-After"], unknown[-1].headers["Retry-After"])
        # even the right password is not checked while the delay lasts
        assert _login(attacker, "auditor", PASSWORD).status_code == 429
        # the real user at their desk is not affected at all
        assert _login(desk, "auditor", PASSWORD).status_code == 200


def test_per_client_throttle_and_every_login_event_audited(pg_db):
    from fpverify.server.models import AuditEntry

    seed_users(pg_db, extra_supervisor=False)
    pg_db.settings.login_client_per_minute = 5
    with _pg_client(pg_db, "198.51.100.9") as sprayer, _pg_client(pg_db, "10.1.0.8") as desk:
        codes = [_login(sprayer, f"user{i}", "spray pw").status_code for i in range(5)]
        r = _login(sprayer, "user99", "spray pw")
        assert codes == [401] * 5 and r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert _login(sprayer, "auditor", PASSWORD).status_code == 429  # whatever the name
        assert _login(desk, "auditor", PASSWORD).status_code == 200  # other clients are not throttled
        for _ in range(pg_db.settings.login_free_failures + 1):  # one more than is free: a delay
            _login(desk, "supervisor", "wrong pw")
    with pg_db.session() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action.like("login%"))))
    actions = {e.action for e in rows}
    assert actions == {"login", "login.failed", "login.lockout", "login.throttled"}, actions
    throttled = [e for e in rows if e.action == "login.throttled"]
    assert len(throttled) == 2 and all(e.entity_id == "198.51.100.9" for e in throttled)
    assert any(e.action == "login.failed" and e.actor == "user3" and "unknown user" in e.note for e in rows)


def test_delays_grow_per_failure_and_end_with_a_good_login(pg_db):
    from datetime import timedelta

    from fpverify.server.core import auth as core_auth
    from fpverify.server.models import LoginThrottle

    seed_users(pg_db, extra_supervisor=False)
    settings = pg_db.settings
    at = datetime.now(UTC)
    with pg_db.session() as s:
        waits = []
        for _ in range(settings.login_free_failures + 3):
            with pytest.raises(core_auth.LoginFailed):
                core_auth.login(s, settings, "10.9.9.9", "auditor", "wrong pw", now=at)
            row = s.scalar(select(LoginThrottle).where(LoginThrottle.username == "auditor"))
            waits.append(0 if row.not_before is None else round((row.not_before - at).total_seconds()))
            at += timedelta(seconds=waits[-1])  # wait out the delay, then fail again
        base = settings.login_delay_s
        assert waits == [0] * settings.login_free_failures + [base, 2 * base, 4 * base], waits
        at += timedelta(seconds=8 * base)
        with pytest.raises(core_auth.LoginFailed):  # one more failure: 8 x base, even for the right password
            core_auth.login(s, settings, "10.9.9.9", "auditor", "wrong pw", now=at)
        with pytest.raises(core_auth.Throttled) as exc:
            core_auth.login(s, settings, "10.9.9.9", "auditor", PASSWORD, now=at + timedelta(seconds=8 * base - 1))
        assert exc.value.retry_after == 1
        core_auth.login(s, settings, "10.9.9.9", "auditor", PASSWORD, now=at + timedelta(seconds=8 * base))
        assert s.scalar(select(LoginThrottle).where(LoginThrottle.username == "auditor")) is None  # forgotten



def test_templates_changed_published_retained(tmp_path, mosquitto_factory):
    broker = mosquitto_factory(conf=BROKER_CONF)
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}", mqtt_port=broker.port, mqtt_client_id="reg-notify")
    db = Database(settings=settings)
    db.migrate()
    seed_users(db, extra_supervisor=False)
    app = create_app(settings, db, start_ingest=True)
    with TestClient(app) as client:
        assert app.state.ingest.wait_ready(30)
        tokens = {r: client.post(f"{P}/auth/login", json={"username": r, "password": PASSWORD}).json()["access_token"]
                  for r in ("sysadmin", "enroller")}
        r = client.post(f"{P}/sites", json={"id": "site-1", "name": "H"}, headers=auth(tokens["sysadmin"]))
        r = client.post(f"{P}/devices", json={"device_id": "dev-1", "site_id": "site-1"},
                        headers=auth(tokens["sysadmin"]))
        assert r.status_code == 201
        make_holder(client, tokens, "C6001")
        assert client.post(f"{P}/enrollments", json=upload_body("C6001"), headers=auth(tokens["enroller"])).status_code == 201
        # a station connecting later gets the retained notification with the current version
        got = []
        done = threading.Event()
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=mqtt.MQTTv5)

        def on_message(c, u, m):
            got.append((m.retain, json.loads(m.payload)))
            if got[-1][1]["version"] >= 3:
                done.set()

        sub.on_message = on_message
        sub.on_connect = lambda c, *a: c.subscribe(wire.Topics("dev-1").templates_notify, qos=1)
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        try:
            assert done.wait(30), got
        finally:
            sub.disconnect()
            sub.loop_stop()
        assert wire.TemplatesChanged.model_validate(got[-1][1]).version == 8
        # the first delivery after subscribing is the retained message, already at the current version
        assert got[0][0] and got[0][1]["version"] == 8, got
    db.dispose()


# ---- starting the registry -------------------------------------------------------------------------

def test_registry_refuses_the_development_secret_outside_demo_mode(pg_url, monkeypatch):
    from typer.testing import CliRunner

    from fpverify.cli import app as cli_app
    from fpverify.server.core.config import ConfigError, Settings, get_settings

    with pytest.raises(ConfigError, match="FPVERIFY_NATIONAL_ID_KEY"):
        create_app(Settings(database_url=pg_url, mqtt_enabled=False))  # production is the default mode
    for mode in ("demo", "development"):
        create_app(Settings(database_url=pg_url, mqtt_enabled=False, mode=mode))
    create_app(Settings(database_url=pg_url, mqtt_enabled=False, national_id_key="a-real-secret-of-our-own"))
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", pg_url)
    monkeypatch.delenv("FPVERIFY_NATIONAL_ID_KEY", raising=False)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli_app, ["server", "run", "--no-ingest"])
        assert r.exit_code == 2 and "set FPVERIFY_NATIONAL_ID_KEY" in r.output and "Traceback" not in r.output, r.output
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_unreachable_broker_is_logged_and_retried_until_it_answers(pg_url, mosquitto_factory, caplog):
    import logging
    import time

    from fpverify.services import free_port

    caplog.set_level(logging.INFO, logger="fpverify.server.app")
    port = free_port()
    settings = make_settings(pg_url, mqtt_port=port, mqtt_client_id="reg-retry")
    db = Database(settings=settings)
    db.migrate()
    app = create_app(settings, db, start_ingest=True)

    def said(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while said("MQTT broker unreachable") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert said(f"MQTT broker unreachable at 127.0.0.1:{port}") >= 2, [r.getMessage() for r in caplog.records]
        assert c.get(f"{P}/health").status_code == 200  # the API serves meanwhile
        mosquitto_factory(conf=BROKER_CONF, port=port)  # the broker comes up on the configured port
        assert app.state.ingest.wait_ready(60)
        assert said("reached after") == 1
    db.dispose()
