"""API flows as stations and staff use them (contract of CONTRACTS.md), plus the feed notification."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import insert

from fpverify.edge import wire
from fpverify.server.app import create_app
from fpverify.server.db import Database
from fpverify.server.models import Alert, VerificationRecord
from fpverify.services import BROKER_CONF
from tests.server.conftest import PASSWORD, auth, make_settings, seed_users, upload_body

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
    assert out["status"] == "enrolled" and len(out["template_ids"]) == 3 and out["feed_version"] == 3
    assert client.post(f"{P}/enrollments", json=body, headers=enr).json() == out  # idempotent re-upload
    feed = wire.TemplateFeed.model_validate_json(
        client.get(f"{P}/devices/dev-1/templates?since=0", headers=auth(tokens["device"])).content)
    assert feed.version == 3 and {c.template_id for c in feed.changes} == set(out["template_ids"])
    assert client.get(f"{P}/devices/dev-1/templates?since=3", headers=auth(tokens["device"])).json()["changes"] == []
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
    assert r.status_code == 401 and "frozen" in r.json()["detail"]
    entries = client.get(f"{P}/audit?entity=alert", headers=auth(tokens["auditor"])).json()
    assert [e["action"] for e in entries] == ["alert.acknowledge", "alert.resolve"]
    assert client.get(f"{P}/audit/verify", headers=auth(tokens["auditor"])).json()["ok"]


def test_lockout_via_api(client, db):
    seed_users(db, extra_supervisor=False)
    for _ in range(3):  # login_max_failures=3 in the test settings
        assert client.post(f"{P}/auth/login", json={"username": "auditor", "password": "nope"}).status_code == 401
    r = client.post(f"{P}/auth/login", json={"username": "auditor", "password": PASSWORD})
    assert r.status_code == 401 and "locked" in r.json()["detail"]
    assert client.post(f"{P}/auth/login", json={"username": "x"}).status_code == 422


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
        assert wire.TemplatesChanged.model_validate(got[-1][1]).version == 3
        # the first delivery after subscribing is the retained message, already at the current version
        assert got[0][0] and got[0][1]["version"] == 3, got
    db.dispose()
