"""Every endpoint, called as every role, as a device and anonymously: allowed or denied as the
policy table below says. The table is checked against the app's route table, so a new endpoint
without an entry here fails this test."""

from __future__ import annotations

import pytest

from tests.server.conftest import auth

PREFIX = "/api/v1"
ANON, SYS, ENR, AUD, SUP, DEV = "anonymous", "sysadmin", "enroller", "auditor", "supervisor", "device"
CALLERS = (ANON, SYS, ENR, AUD, SUP, DEV)
PERSONAL = {ENR, SUP, AUD}
OFFICE = {SUP, AUD}
STAFF = {SYS, ENR, AUD, SUP}

# (method, path) -> who may call it. Sysadmins never reach personal or biometric data.
POLICY: dict[tuple[str, str], set[str]] = {
    ("POST", "/auth/login"): set(CALLERS),
    ("POST", "/auth/logout"): STAFF,
    ("GET", "/auth/me"): STAFF,
    ("GET", "/health"): set(CALLERS),
    ("GET", "/openapi.json"): set(CALLERS),
    ("GET", "/users"): {SYS, AUD},
    ("POST", "/users"): {SYS},
    ("POST", "/users/{user_id}/freeze"): {SYS},
    ("POST", "/users/{user_id}/unfreeze"): {SYS},
    ("POST", "/users/{user_id}/password"): {SYS},
    ("POST", "/users/{user_id}/role"): {SYS},
    ("GET", "/sites"): STAFF,
    ("POST", "/sites"): {SYS},
    ("GET", "/devices"): STAFF,
    ("POST", "/devices"): {SYS},
    ("POST", "/devices/{device_id}/token"): {SYS},
    ("POST", "/devices/{device_id}/disable"): {SYS},
    ("POST", "/devices/{device_id}/enable"): {SYS},
    ("GET", "/devices/{device_id}/templates"): {DEV},
    ("GET", "/cardholders"): PERSONAL,
    ("POST", "/cardholders"): {ENR},
    ("GET", "/cardholders/{card_number}"): PERSONAL,
    ("POST", "/cardholders/{card_number}/block"): {SUP},
    ("GET", "/cardholders/{card_number}/consents"): PERSONAL,
    ("POST", "/cardholders/{card_number}/consents"): {ENR},
    ("POST", "/cardholders/{card_number}/consents/withdraw"): {ENR, SUP},
    ("GET", "/cardholders/{card_number}/delegates"): PERSONAL,
    ("POST", "/cardholders/{card_number}/delegates"): {ENR},
    ("GET", "/cardholders/{card_number}/templates"): PERSONAL,
    ("POST", "/enrollments"): {ENR},
    ("GET", "/enrollments/{enrollment_id}"): PERSONAL,
    ("GET", "/results"): OFFICE,
    ("GET", "/results/{result_id}"): OFFICE,
    ("GET", "/deadletters"): OFFICE,
    ("GET", "/alerts"): OFFICE,
    ("POST", "/alerts/{alert_id}/acknowledge"): {SUP},
    ("POST", "/alerts/{alert_id}/resolve"): {SUP},
    ("GET", "/stays"): PERSONAL,
    ("POST", "/stays"): {ENR},
    ("GET", "/stays/overdue"): PERSONAL,
    ("POST", "/stays/{stay_id}/discharge"): {ENR},
    ("GET", "/approvals"): OFFICE,
    ("POST", "/approvals"): {SUP},
    ("POST", "/approvals/{approval_id}/approve"): {SUP},
    ("POST", "/approvals/{approval_id}/reject"): {SUP},
    ("GET", "/audit"): {AUD},
    ("GET", "/audit/verify"): {AUD, SYS},
}

PARAMS = {"user_id": "2", "device_id": "dev-1", "card_number": "C0001", "enrollment_id": "e-1",
          "result_id": "00000000-0000-0000-0000-000000000001", "alert_id": "1", "stay_id": "1", "approval_id": "1"}


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
