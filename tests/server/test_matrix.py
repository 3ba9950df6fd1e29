"""Every endpoint, called as every role, as a device and anonymously: allowed or denied as the
policy table (tests/server/policy.py) says. The table is checked against the app's route
table, so a new endpoint without an entry there fails this test."""

from __future__ import annotations

import pytest

from tests.server.helpers import PASSWORD, auth
from tests.server.policy import ANON, AUD, CALLERS, DEV, ENR, PARAMS, POLICY, PREFIX, SUP, SYS


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every API route, from the app's route table (nested routers included)."""
    found = set()

    def walk(routes):
        for r in routes:
            contexts = getattr(r, "effective_route_contexts", None)
            if contexts is not None:
                for c in contexts():
                    for m in c.methods or ():
                        found.add((m, c.path))
            elif getattr(r, "methods", None) and getattr(r, "path", "").startswith(PREFIX):
                for m in r.methods:
                    found.add((m, r.path))
            elif hasattr(r, "routes"):
                walk(r.routes)

    walk(app.routes)
    return {(m, p[len(PREFIX):]) for m, p in found if p.startswith(PREFIX) and m != "HEAD"}


def test_policy_covers_every_route(app):
    routes = api_routes(app)
    assert routes, "route table is empty?"
    openapi = {(m.upper(), p[len(PREFIX):]) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert routes - {("GET", "/openapi.json")} == openapi, "route table and OpenAPI disagree"
    missing = routes - POLICY.keys()
    assert not missing, f"endpoints without a role-matrix entry: {sorted(missing)}"
    stale = POLICY.keys() - routes
    assert not stale, f"matrix entries for endpoints that do not exist: {sorted(stale)}"


def test_role_matrix(app, client, tokens):
    failures = []
    routes = sorted(api_routes(app))
    for method, path in routes:
        url = PREFIX + path.format(**PARAMS)
        for caller in CALLERS:
            headers = {} if caller == ANON else auth(tokens[caller])
            if (method, path) == ("POST", "/auth/logout") and caller != ANON:
                continue  # would revoke the token the rest of the matrix uses; checked below
            kwargs = {"json": {}} if method == "POST" else {}
            r = client.request(method, url, headers=headers, **kwargs)
            allowed = caller in POLICY[(method, path)]
            denied_status = r.status_code in (401, 403)
            if allowed == denied_status:
                failures.append(f"{caller:10s} {method} {path}: got {r.status_code}, expected "
                                f"{'allowed' if allowed else 'denied'}")
            if caller == ANON and not allowed:
                assert r.status_code == 401, (method, path, r.status_code)
            assert r.status_code < 500, (caller, method, path, r.status_code, r.text)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("caller", [SYS, ENR, AUD, SUP])
def test_logout_revokes_token(client, tokens, caller):
    h = auth(tokens[caller])
    assert client.get(f"{PREFIX}/auth/me", headers=h).status_code == 200
    assert client.post(f"{PREFIX}/auth/logout", headers=h).status_code == 204
    assert client.get(f"{PREFIX}/auth/me", headers=h).status_code == 401


def test_device_reads_only_its_own_feed(client, tokens, db):
    from fpverify.server.crud import devices

    with db.session() as s:
        _, other = devices.create_device(s, "t", "site-1", "dev-2")
        s.commit()
    assert client.get(f"{PREFIX}/devices/dev-1/templates", headers=auth(tokens[DEV])).status_code == 200
    assert client.get(f"{PREFIX}/devices/dev-2/templates", headers=auth(tokens[DEV])).status_code == 403
    assert client.get(f"{PREFIX}/devices/dev-2/templates", headers=auth(other)).status_code == 200
    # a disabled device's token stops working
    client.post(f"{PREFIX}/devices/dev-2/disable", headers=auth(tokens[SYS]))
    assert client.get(f"{PREFIX}/devices/dev-2/templates", headers=auth(other)).status_code == 401


# ---- user administration as sequences (create, then act through what was created), on PostgreSQL --

@pytest.fixture
def office(pg_db):
    """The registry on PostgreSQL with one account of each role (two supervisors), all made on the
    console (the root of trust), and a logged-in client for each."""
    from fastapi.testclient import TestClient

    from fpverify.server.app import create_app
    from tests.server.helpers import login, seed_users

    ids = seed_users(pg_db)
    with TestClient(create_app(pg_db.settings, pg_db)) as c:
        c.ids = ids
        c.tokens = {name: login(c, name) for name in ids}
        yield c


def _as(c, who: str) -> dict:
    return auth(c.tokens[who])


def _request_account(c, username: str, role: str, by: str = SYS) -> dict:
    r = c.post(f"{PREFIX}/users", json={"username": username, "role": role, "reason": "new colleague"},
               headers=_as(c, by))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["one_time_password"] is None
    return r.json()


def _approve(c, approval_id: int, by: str = SUP):
    return c.post(f"{PREFIX}/approvals/{approval_id}/approve", json={"comment": "checked"}, headers=_as(c, by))


def _first_login(c, username: str, one_time: str) -> str:
    """Log in with a one-time password: refused until the user chooses their own, then a token."""
    r = c.post(f"{PREFIX}/auth/login", json={"username": username, "password": one_time})
    assert r.status_code == 403 and "one-time password" in r.json()["detail"], r.text
    r = c.post(f"{PREFIX}/auth/password", json={"username": username, "password": one_time,
                                                 "new_password": "my own secret pw"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_sysadmin_alone_cannot_create_an_account_and_read_through_it(office):
    c = office
    for role in ("enroller", "auditor", "supervisor", "sysadmin"):  # every role is power here
        a = _request_account(c, f"new-{role}", role)
        # no account yet: the sysadmin cannot log in as it, nor approve the request, nor read through it
        assert c.post(f"{PREFIX}/auth/login", json={"username": f"new-{role}", "password": "anything long"}
                      ).status_code == 401
        assert _approve(c, a["id"], by=SYS).status_code == 403
        assert c.post(f"{PREFIX}/approvals/{a['id']}/approve", json={}, headers=_as(c, ENR)).status_code == 403
    assert c.get(f"{PREFIX}/cardholders", headers=_as(c, SYS)).status_code == 403
    # the sysadmin sees their requests, never a one-time password
    listed = c.get(f"{PREFIX}/approvals?status=pending", headers=_as(c, SYS)).json()
    assert {x["target"] for x in listed} >= {"new-auditor"} and all(x["one_time_password"] is None for x in listed)
    # a supervisor approves: the one-time password goes to them, once
    pending = {x["target"]: x["id"] for x in listed}
    r = _approve(c, pending["new-auditor"])
    assert r.status_code == 200 and r.json()["status"] == "executed", r.text
    otp = r.json()["one_time_password"]
    assert otp and c.get(f"{PREFIX}/approvals", headers=_as(c, SUP)).json()[0]["one_time_password"] is None
    token = _first_login(c, "new-auditor", otp)
    assert c.get(f"{PREFIX}/audit", headers=auth(token)).status_code == 200  # the auditor works
    assert c.post(f"{PREFIX}/auth/login", json={"username": "new-auditor", "password": otp}).status_code == 401
    users = {u["username"]: u for u in c.get(f"{PREFIX}/users", headers=_as(c, SYS)).json()}
    assert users["new-auditor"]["created_by"] == SYS and users["new-auditor"]["role"] == "auditor"


def test_an_account_cannot_approve_requests_of_whoever_created_it(office):
    c = office
    a = _request_account(c, "sup-friend", "supervisor")
    otp = _approve(c, a["id"]).json()["one_time_password"]
    friend = _first_login(c, "sup-friend", otp)
    # the sysadmin now asks for another powerful account; their own creation may not approve it
    b = _request_account(c, "aud-friend", "auditor")
    r = c.post(f"{PREFIX}/approvals/{b['id']}/approve", json={}, headers=auth(friend))
    assert r.status_code == 403 and "created it" in r.json()["detail"]
    assert c.post(f"{PREFIX}/approvals/{b['id']}/reject", json={}, headers=auth(friend)).status_code == 403
    # nor a role change the sysadmin asks for
    r = c.post(f"{PREFIX}/users/{c.ids['enroller']}/role", json={"role": "supervisor", "reason": "promotion"},
               headers=_as(c, SYS))
    assert r.status_code == 202
    assert c.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={}, headers=auth(friend)).status_code == 403
    # an independent supervisor may
    assert _approve(c, b["id"], by="supervisor2").json()["status"] == "executed"


def test_nobody_changes_their_own_role(office):
    c = office
    r = c.post(f"{PREFIX}/users/{c.ids['sysadmin']}/role", json={"role": "auditor", "reason": "x"}, headers=_as(c, SYS))
    assert r.status_code == 403
    # supervisors cannot file account operations at all, for themselves or others
    r = c.post(f"{PREFIX}/approvals", json={"action": "set_role", "target": str(c.ids["supervisor"]),
                                            "param": "sysadmin", "reason": "x"}, headers=_as(c, SUP))
    assert r.status_code == 403
    # a change to a supervisor's own account is decided by another supervisor only
    r = c.post(f"{PREFIX}/users/{c.ids['supervisor']}/role", json={"role": "auditor", "reason": "moves"},
               headers=_as(c, SYS))
    assert r.status_code == 202
    assert _approve(c, r.json()["id"], by=SUP).status_code == 403
    assert _approve(c, r.json()["id"], by="supervisor2").json()["status"] == "executed"
    # the new role holds at the next login (the old token ended with the change)
    assert c.get(f"{PREFIX}/auth/me", headers=_as(c, SUP)).status_code == 401
    assert c.post(f"{PREFIX}/auth/login", json={"username": SUP, "password": PASSWORD}).json()["role"] == "auditor"


def test_password_reset_goes_to_the_approver_never_to_the_sysadmin(office):
    c = office
    r = c.post(f"{PREFIX}/users/{c.ids['enroller']}/password", json={"reason": "forgot it"}, headers=_as(c, SYS))
    assert r.status_code == 202 and r.json()["one_time_password"] is None
    assert c.get(f"{PREFIX}/auth/me", headers=_as(c, ENR)).status_code == 200  # nothing happened yet
    r = c.post(f"{PREFIX}/users/{c.ids['sysadmin']}/password", json={"reason": "mine"}, headers=_as(c, SYS))
    assert r.status_code == 403  # one's own password: POST /auth/password
    approval = c.get(f"{PREFIX}/approvals?status=pending", headers=_as(c, SUP)).json()[0]
    otp = _approve(c, approval["id"]).json()["one_time_password"]
    assert c.get(f"{PREFIX}/auth/me", headers=_as(c, ENR)).status_code == 401  # sessions ended
    assert c.post(f"{PREFIX}/auth/login", json={"username": ENR, "password": PASSWORD}).status_code == 401
    token = _first_login(c, ENR, otp)
    assert c.get(f"{PREFIX}/cardholders", headers=auth(token)).status_code == 200


def test_unfreezing_needs_a_second_person(office):
    c = office
    assert c.post(f"{PREFIX}/users/{c.ids['auditor']}/freeze", headers=_as(c, SYS)).json()["frozen"]  # direct
    assert c.get(f"{PREFIX}/auth/me", headers=_as(c, AUD)).status_code == 401
    r = c.post(f"{PREFIX}/users/{c.ids['auditor']}/unfreeze", json={"reason": "back from leave"}, headers=_as(c, SYS))
    assert r.status_code == 202
    login = {"username": AUD, "password": PASSWORD}
    assert c.post(f"{PREFIX}/auth/login", json=login).status_code == 403  # still frozen
    assert _approve(c, r.json()["id"]).json()["status"] == "executed"
    assert c.post(f"{PREFIX}/auth/login", json=login).status_code == 200


def test_sysadmin_never_sees_card_operations(office):
    from fpverify.server.crud import holders

    c = office
    with c.app.state.db.session() as s:
        holders.create_holder(s, "enr", "test-national-id-key", "C-7001", "Wang Fang", "ID-7001")
        holders.set_status(s, "supervisor", "C-7001", "blocked")
        s.commit()
    r = c.post(f"{PREFIX}/approvals", json={"action": "unblock_card", "target": "C-7001", "reason": "returned"},
               headers=_as(c, SUP))
    assert r.status_code == 201
    _request_account(c, "someone", "enroller")
    seen = c.get(f"{PREFIX}/approvals", headers=_as(c, SYS)).json()
    assert [x["action"] for x in seen] == ["create_account"] and "C-7001" not in str(seen)
    assert len(c.get(f"{PREFIX}/approvals", headers=_as(c, AUD)).json()) == 2


# ---- devices: a feed token reads card numbers and templates, so it is a special operation too -----

def _feed(c, device_id: str, token: str):
    return c.get(f"{PREFIX}/devices/{device_id}/templates?since=0", headers=auth(token))


def _enrolled_card(c, card: str) -> None:
    """A card holder with templates in the feed (what a device token would read)."""
    from tests.server.helpers import upload_body

    enr = _as(c, ENR)
    assert c.post(f"{PREFIX}/cardholders", json={"card_number": card, "name": "Li Lei", "national_id": "11010119"},
                  headers=enr).status_code == 201
    assert c.post(f"{PREFIX}/cardholders/{card}/consents", headers=enr, json={
        "given_at": "2026-01-01T08:00:00+00:00", "scope": "fingerprint", "witnessed_by": "op-7"}).status_code == 201
    assert c.post(f"{PREFIX}/enrollments", json=upload_body(card), headers=enr).status_code == 201


def test_sysadmin_alone_never_holds_a_working_feed_token(office):
    c = office
    _enrolled_card(c, "C-8001")
    assert c.post(f"{PREFIX}/sites", json={"id": "hosp-9", "name": "H9"}, headers=_as(c, SYS)).status_code == 201
    r = c.post(f"{PREFIX}/devices", json={"device_id": "desk-9", "site_id": "hosp-9", "reason": "new billing desk"},
               headers=_as(c, SYS))
    assert r.status_code == 201, r.text
    filed = r.json()["approval"]
    assert filed["action"] == "device_token" and filed["status"] == "pending" and filed["device_token"] is None
    assert "token" not in r.json()  # the device exists; nothing in the answer opens its feed
    # the sysadmin tries the feed with what they hold, then to decide their own request
    assert _feed(c, "desk-9", c.tokens[SYS]).status_code == 401
    r = _approve(c, filed["id"], by=SYS)
    assert r.status_code == 403 and "device_token" not in r.text
    assert _approve(c, filed["id"], by=ENR).status_code == 403
    # supervisors cannot file device tokens either (that would be two supervisors, no sysadmin review)
    r = c.post(f"{PREFIX}/approvals", json={"action": "device_token", "target": "desk-9", "reason": "x"},
               headers=_as(c, SUP))
    assert r.status_code == 403
    # a supervisor the sysadmin had created may not approve that sysadmin's device request
    otp = _approve(c, _request_account(c, "sup-friend", "supervisor")["id"]).json()["one_time_password"]
    friend = _first_login(c, "sup-friend", otp)
    r = c.post(f"{PREFIX}/approvals/{filed['id']}/approve", json={}, headers=auth(friend))
    assert r.status_code == 403 and "created it" in r.json()["detail"]
    # an independent supervisor approves and alone receives the token, once
    r = _approve(c, filed["id"])
    assert r.status_code == 200 and r.json()["status"] == "executed", r.text
    token = r.json()["device_token"]
    assert token and r.json()["one_time_password"] is None
    listed = c.get(f"{PREFIX}/approvals", headers=_as(c, SYS)).json()
    assert filed["id"] in {x["id"] for x in listed} and token not in str(listed)
    assert token not in str(c.get(f"{PREFIX}/approvals", headers=_as(c, SUP)).json())
    assert _feed(c, "desk-9", token).status_code == 200
    # the token opens the device's own site feed and fetches (C-8001 was enrolled at another site)
    card = c.get(f"{PREFIX}/devices/desk-9/cards/C-8001", headers=auth(token))
    assert card.status_code == 200 and card.json()["card_number"] == "C-8001" and card.json()["templates"]
    assert "C-8001" in _feed(c, "desk-9", token).text  # fetched: now assigned to hosp-9, in its feed
    # a re-issue is filed, not granted: the sysadmin gets no token and the installed one keeps working
    r = c.post(f"{PREFIX}/devices/desk-9/token", json={"reason": "station reinstalled"}, headers=_as(c, SYS))
    assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["device_token"] is None
    again = c.post(f"{PREFIX}/devices/desk-9/token", json={"reason": "twice"}, headers=_as(c, SYS))
    assert again.status_code == 409  # one open request per device
    assert _approve(c, r.json()["id"], by=SYS).status_code == 403
    assert _feed(c, "desk-9", token).status_code == 200
    new = _approve(c, r.json()["id"], by="supervisor2").json()["device_token"]
    assert new and new != token
    assert _feed(c, "desk-9", token).status_code == 401 and _feed(c, "desk-9", new).status_code == 200
    # the trail: who asked, who approved, when the token changed
    audit = c.get(f"{PREFIX}/audit?entity=device", headers=_as(c, AUD)).json()
    assert [e["action"] for e in audit].count("device.rotate_token") == 2
    assert {e["actor"] for e in audit if e["action"] == "device.rotate_token"} == {SUP, "supervisor2"}


def test_no_token_for_a_retired_or_unknown_device(office):
    c = office
    c.post(f"{PREFIX}/sites", json={"id": "hosp-9", "name": "H9"}, headers=_as(c, SYS))
    filed = c.post(f"{PREFIX}/devices", json={"device_id": "desk-8", "site_id": "hosp-9"}, headers=_as(c, SYS)).json()
    assert c.post(f"{PREFIX}/devices/desk-8/retire", headers=_as(c, SYS)).status_code == 200
    r = _approve(c, filed["approval"]["id"])  # checked again at execution: retired since the request
    assert r.status_code == 409 and "retired" in r.json()["detail"]
    assert c.post(f"{PREFIX}/devices/desk-8/token", json={"reason": "x"}, headers=_as(c, SYS)).status_code == 409
    assert c.post(f"{PREFIX}/devices/nope/token", json={"reason": "x"}, headers=_as(c, SYS)).status_code == 404
