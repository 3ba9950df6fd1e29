"""Schema-driven fuzzing of the whole OpenAPI, in-process over ASGI: no input may cause a 5xx.

Each generated request carries the token of a role the policy allows for that endpoint (so the
fuzzing reaches the handlers, not just the 403), or none for public endpoints. Bounded: a few
examples per operation."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from fpverify.server.app import create_app
from fpverify.server.crud import devices
from fpverify.server.db import Database
from tests.server.helpers import ROLES, login, make_settings, seed_users
from tests.server.policy import ANON, POLICY, PREFIX


@pytest.fixture(scope="module")
def fuzz_env():
    tmp = Path(tempfile.mkdtemp(prefix="fpverify-fuzz-"))
    db = Database(settings=make_settings(f"sqlite:///{tmp / 'fuzz.db'}", lockout_minutes=0))
    db.create_all()
    seed_users(db)
    app = create_app(db.settings, db)
    with TestClient(app) as c:
        tokens = {r: login(c, r) for r in ROLES}
    with db.session() as s:
        _, tokens["device"] = devices.create_device(s, "t", "site-1", "dev-1", create_site_if_missing=True)
        s.commit()
    yield app, tokens
    db.dispose()


@pytest.mark.slow
def test_no_server_errors(fuzz_env):
    app, tokens = fuzz_env
    schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        path = op.path.removeprefix(PREFIX)
        if path == "/auth/logout":
            continue  # would revoke the shared tokens (covered by test_matrix)
        allowed = POLICY[(op.method.upper(), path)]
        caller = next((r for r in (*ROLES, "device") if r in allowed), ANON)
        operations += 1
        fuzz_operation(op, caller, tokens, failures)
    assert operations > 40
    assert not failures, "\n".join(failures)


def fuzz_operation(op, caller: str, tokens: dict, failures: list[str]) -> None:
    @given(case=op.as_strategy())
    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case):
        headers = dict(case.headers or {})
        if caller != ANON:
            headers["Authorization"] = f"Bearer {tokens[caller]}"
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} as {caller}: {response.status_code} "
                            f"{response.text[:300]}")

    run()
