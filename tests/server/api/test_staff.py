"""Clerks' sign-in credentials at the registry: an operator account made by four eyes, its finger
templates and PIN filed by a sysadmin and active only once a supervisor approves, the per-device
staff feed (a device reads only its own site's clerks), freezing, revoking, and what an operator
account cannot reach (API, dashboard)."""

from __future__ import annotations

import base64
import json
import re
import uuid

from sqlalchemy import select

from fpverify.edge import wire
from fpverify.server.core.security import verify_password
from fpverify.server.crud import devices
from fpverify.server.models import AuditEntry, StaffTemplate
from tests.server.helpers import auth
from tests.server.policy import AUD, DEV, ENR, PREFIX, SUP, SYS

PIN = "480715"


def _as(tokens, who):
    return auth(tokens[who])


def _fingers(*positions: int, tag: bytes = b"") -> list[dict]:
    return [{"finger": f, "templates": [base64.b64encode(uuid.uuid4().bytes + tag + b"staff").decode()
                                        for _ in range(3)], "qualities": [70, 75, 80]} for f in positions]


def _operator(client, tokens, username: str) -> tuple[int, str]:
    """An operator account as a hospital makes one: the sysadmin asks, a supervisor approves and
    hands over the one-time password, the clerk chooses their own. Returns (user id, token)."""
    r = client.post(f"{PREFIX}/users", json={"username": username, "role": "operator", "reason": "new clerk"},
                    headers=_as(tokens, SYS))
    assert r.status_code == 202, r.text
    assert client.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={},
                       headers=_as(tokens, SYS)).status_code == 403  # not on one person's word
    otp = client.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={},
                      headers=_as(tokens, SUP)).json()["one_time_password"]
    r = client.post(f"{PREFIX}/auth/password", json={"username": username, "password": otp,
                                                      "new_password": "clerk's own password"})
    assert r.status_code == 200, r.text
    users = {u["username"]: u for u in client.get(f"{PREFIX}/users", headers=_as(tokens, SYS)).json()}
    return users[username]["id"], r.json()["access_token"]


def _enroll(client, tokens, user_id: int, site: str = "site-1", pin: str | None = PIN, fingers=None):
    body = {"site_id": site, "fingers": fingers or _fingers(2, 7), "reason": "clerk enrolled in person"}
    if pin is not None:
        body["pin"] = pin
    return client.post(f"{PREFIX}/staff/{user_id}/credentials", json=body, headers=_as(tokens, SYS))


def _feed(client, token: str, device: str = "dev-1"):
    r = client.get(f"{PREFIX}/devices/{device}/staff", headers=auth(token))
    assert r.status_code == 200, r.text
    return wire.StaffFeed.model_validate_json(r.content)


def test_staff_credential_needs_a_second_person_and_reaches_only_its_site(db, client, tokens):
    uid, _ = _operator(client, tokens, "clerk.wang")
    assert _feed(client, tokens[DEV]).staff == []
    r = _enroll(client, tokens, uid)
    assert r.status_code == 202, r.text
    filed = r.json()["approval"]
    assert filed["action"] == "staff_credential" and filed["status"] == "pending"
    assert _feed(client, tokens[DEV]).staff == []  # pending: no station knows it yet
    # the sysadmin cannot approve their own filing, nor can an enroller; a supervisor can
    assert client.post(f"{PREFIX}/approvals/{filed['id']}/approve", json={}, headers=_as(tokens, SYS)).status_code == 403
    assert client.post(f"{PREFIX}/approvals/{filed['id']}/approve", json={}, headers=_as(tokens, ENR)).status_code == 403
    r = client.post(f"{PREFIX}/approvals/{filed['id']}/approve", json={"comment": "saw the clerk"},
                    headers=_as(tokens, SUP))
    assert r.status_code == 200 and r.json()["status"] == "executed", r.text
    feed = _feed(client, tokens[DEV])
    assert feed.site_id == "site-1" and [m.operator_id for m in feed.staff] == ["clerk.wang"]
    member = feed.staff[0]
    assert member.status == "active" and len(member.templates) == 6 and {t.finger for t in member.templates} == {2, 7}
    assert member.pin_hash.startswith("$argon2id$") and PIN not in member.pin_hash
    assert verify_password(member.pin_hash, PIN) and not verify_password(member.pin_hash, "480716")

    # another site's clerk is not in this device's list, and this device cannot read the other's
    with db.session() as s:
        devices.create_site(s, "t", "site-2", "Second hospital")
        _, other = devices.create_device(s, "t", "site-2", "dev-2")
        s.commit()
    uid2, _ = _operator(client, tokens, "clerk.li")
    a2 = _enroll(client, tokens, uid2, site="site-2").json()["approval"]
    client.post(f"{PREFIX}/approvals/{a2['id']}/approve", json={}, headers=_as(tokens, SUP))
    assert [m.operator_id for m in _feed(client, tokens[DEV]).staff] == ["clerk.wang"]
    assert [m.operator_id for m in _feed(client, other, "dev-2").staff] == ["clerk.li"]
    assert client.get(f"{PREFIX}/devices/dev-2/staff", headers=_as(tokens, DEV)).status_code == 403
    assert client.get(f"{PREFIX}/devices/dev-1/staff", headers=_as(tokens, SYS)).status_code == 401
    # the patients' template feed never carries a clerk
    assert "clerk" not in client.get(f"{PREFIX}/devices/dev-1/templates", headers=_as(tokens, DEV)).text

    # the listing shows state, never templates or the PIN hash; the audit has neither
    listed = client.get(f"{PREFIX}/staff", headers=_as(tokens, AUD)).json()
    assert {x["username"]: x["status"] for x in listed} == {"clerk.wang": "active", "clerk.li": "active"}
    assert "argon2" not in json.dumps(listed) and "templates" not in listed[0]
    with db.session() as s:
        trail = json.dumps([(e.action, e.note, e.after_digest) for e in s.scalars(select(AuditEntry))], default=str)
    assert "staff.enroll" in trail and "staff.activate" in trail and PIN not in trail


def test_replacing_rejecting_and_revoking_purge_templates(db, client, tokens):
    uid, _ = _operator(client, tokens, "clerk.zhao")
    first = _enroll(client, tokens, uid).json()
    client.post(f"{PREFIX}/approvals/{first['approval']['id']}/approve", json={}, headers=_as(tokens, SUP))
    # a second filing, rejected: nothing changes at the station, its templates are gone
    second = _enroll(client, tokens, uid, fingers=_fingers(3)).json()
    assert client.post(f"{PREFIX}/approvals/{second['approval']['id']}/reject", json={},
                       headers=_as(tokens, SUP)).status_code == 200
    assert {t.finger for t in _feed(client, tokens[DEV]).staff[0].templates} == {2, 7}
    # a third, approved: it replaces the first
    third = _enroll(client, tokens, uid, fingers=_fingers(1), pin=None).json()
    client.post(f"{PREFIX}/approvals/{third['approval']['id']}/approve", json={}, headers=_as(tokens, "supervisor2"))
    member = _feed(client, tokens[DEV]).staff[0]
    assert {t.finger for t in member.templates} == {1} and member.pin_hash is None
    with db.session() as s:
        kept = set(s.scalars(select(StaffTemplate.credential_id)))
    assert kept == {third["credential_id"]}
    # revoking is direct and ends the sign-in everywhere
    assert client.post(f"{PREFIX}/staff/{uid}/revoke", headers=_as(tokens, SYS)).status_code == 200
    assert _feed(client, tokens[DEV]).staff == []
    assert client.post(f"{PREFIX}/staff/{uid}/revoke", headers=_as(tokens, SYS)).status_code == 404


class Notes:
    """Stands in for the MQTT notifier (server/ingest/notifier.py): what it was asked to publish."""

    def __init__(self):
        self.versions = []

    def notify(self, version=None):
        self.versions.append(version)


def test_frozen_clerk_leaves_the_feed_without_credentials(db, client, tokens):
    uid, _ = _operator(client, tokens, "clerk.sun")
    db.notifier = notes = Notes()
    a = _enroll(client, tokens, uid).json()["approval"]
    client.post(f"{PREFIX}/approvals/{a['id']}/approve", json={}, headers=_as(tokens, SUP))
    assert len(notes.versions) == 2  # filed, then approved: stations are told to pull
    assert client.post(f"{PREFIX}/users/{uid}/freeze", headers=_as(tokens, SYS)).json()["frozen"]
    assert len(notes.versions) == 3  # the freeze reaches the stations at once, not at the next interval
    client.get(f"{PREFIX}/users", headers=_as(tokens, SYS))
    assert len(notes.versions) == 3
    member = _feed(client, tokens[DEV]).staff[0]
    assert (member.operator_id, member.status, member.templates, member.pin_hash) == ("clerk.sun", "frozen", [], None)
    # no new credential for a frozen account; unfreezing takes a second person again
    assert _enroll(client, tokens, uid).status_code == 409
    r = client.post(f"{PREFIX}/users/{uid}/unfreeze", json={"reason": "back"}, headers=_as(tokens, SYS))
    assert _feed(client, tokens[DEV]).staff[0].status == "frozen"
    client.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={}, headers=_as(tokens, SUP))
    assert _feed(client, tokens[DEV]).staff[0].status == "active"


def test_bad_filings_are_clear_refusals(client, tokens, db):
    uid, _ = _operator(client, tokens, "clerk.qian")
    for pin, why in (("1234", "at least 6"), ("111111", "repeated"), ("123456", "run"), ("12ab56", "digits")):
        r = _enroll(client, tokens, uid, pin=pin)
        assert r.status_code == 422 and why in r.text, (pin, r.text)
    assert _enroll(client, tokens, uid, site="nowhere").status_code == 404
    assert _enroll(client, tokens, 99999).status_code == 404
    users = {u["username"]: u["id"] for u in client.get(f"{PREFIX}/users", headers=_as(tokens, SYS)).json()}
    # only desk roles sign in at a station: not a supervisor, not the sysadmin themselves
    assert _enroll(client, tokens, users["supervisor"]).status_code == 422
    assert _enroll(client, tokens, users["sysadmin"]).status_code in (403, 422)
    # only sysadmins file, and the generic approvals route cannot file one either
    r = client.post(f"{PREFIX}/staff/{uid}/credentials", headers=_as(tokens, SUP),
                    json={"site_id": "site-1", "fingers": _fingers(2), "reason": "x"})
    assert r.status_code == 403
    r = client.post(f"{PREFIX}/approvals", json={"action": "staff_credential", "target": "x", "reason": "x"},
                    headers=_as(tokens, SUP))
    assert r.status_code == 403


def test_an_operator_account_reaches_no_data_and_no_dashboard(client, tokens):
    """An attacker holding a clerk's password tries the API and the dashboard."""
    _, token = _operator(client, tokens, "clerk.zhou")
    h = auth(token)
    assert client.get(f"{PREFIX}/auth/me", headers=h).json()["role"] == "operator"
    for path in ("/cardholders", "/results", "/alerts", "/users", "/staff", "/audit", "/stays", "/devices",
                 "/approvals", "/cardholders/C0001/templates"):
        assert client.get(PREFIX + path, headers=h).status_code == 403, path
    assert client.get(f"{PREFIX}/devices/dev-1/staff", headers=h).status_code == 401
    assert client.get(f"{PREFIX}/devices/dev-1/templates", headers=h).status_code == 401
    assert client.post(f"{PREFIX}/staff/1/credentials", headers=h,
                       json={"site_id": "site-1", "fingers": _fingers(2), "reason": "me"}).status_code == 403
    page = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/dashboard/login", data={"username": "clerk.zhou", "password": "clerk's own password",
                                              "csrf_token": csrf, "next": "/dashboard/"})
    assert r.status_code == 403 and "/dashboard/" != r.url.path
