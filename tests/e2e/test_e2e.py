"""End to end: real Mosquitto, real PostgreSQL, real stations (simulated sensors on ptys, the real
driver, the real matcher on synthetic fingers). Every verification made at a desk is in the
registry's API and on the dashboard page, exactly once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from fpverify.demo.cast import PASSWORDS
from fpverify.demo.system import Demo
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # the whole system end to end, and the demo as a subprocess

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def dashboard_client(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30, follow_redirects=True)
    token = CSRF.search(c.get("/dashboard/login").text).group(1)
    r = c.post("/dashboard/login", data={"username": username, "password": PASSWORDS[username], "csrf_token": token})
    assert r.status_code == 200 and r.url.path == "/dashboard/", r.text[:300]
    return c


def test_n_verifications_reach_api_and_dashboard_exactly_once(tmp_path, pg_url, mosquitto):
    demo = Demo(tmp_path, holders=8, database_url=pg_url, external_broker=(mosquitto.port, "5"))
    try:
        demo.start()
        h = demo.cast.holders
        dele, impostor = demo.cast.delegate, demo.cast.impostor
        demo.enroll_all([h[0], h[1], h[2], dele])
        # The hospital's stations get them from their site's feed (enrolled there); the pharmacy, another
        # site, fetches each card when it is first presented (issue 18).
        for st in demo.stations.values():
            if st.site_id != "city-hospital":
                assert not st.station.store.has_card(h[0].card), "another site's holder reached the pharmacy"
                continue
            for p in (h[0], h[1], h[2]):
                assert st.wait_templates(p.card, 60), f"{st.device_id} never got {p.card}"
            assert st.wait_templates(h[2].card, 60, dele.delegate_id)
        plan = [("desk", h[0], None, False), ("pharmacy", h[1], None, False), ("ward", h[2], None, False),
                ("pharmacy", impostor, h[0].card, False), ("desk", h[1], None, True),
                ("pharmacy", dele, h[2].card, False), ("desk", h[2], None, False), ("ward", h[0], None, False),
                ("desk", impostor, h[1].card, False), ("pharmacy", h[0], None, False),
                ("desk", demo.cast.unenrolled, None, False), ("ward", h[1], None, False)]
        # The pharmacy loses its network in the middle: its results wait in the outbox.
        made = []
        for i, (station, person, card, poor) in enumerate(plan):
            if i == 4:
                demo.stations["pharmacy"].relay.cut(4.0)
            made.append(demo.visit(station, person, card=card, poor=poor))
        n = len(made)
        local = Counter(r.outcome.value for r in made)
        # Deterministic outcomes (the quality gate, the cache); the matcher's own decisions vary with its
        # accuracy on synthetic fingers, so only their bookkeeping is checked below, exactly.
        assert made[4].outcome.value == "poor_quality" and made[10].outcome.value == "not_enrolled"
        assert local["match"] + local["delegate_match"] >= 5
        assert demo.drain(60), "results did not all reach the registry"

        api = httpx.Client(base_url=demo.registry.url, timeout=30)
        tok = api.post("/api/v1/auth/login", json={"username": "auditor", "password": PASSWORDS["auditor"]})
        api.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"
        stored = api.get("/api/v1/results", params={"limit": 1000}).json()
        assert len(stored) == n
        assert {r["result_id"] for r in stored} == {str(r.result_id) for r in made}
        assert Counter(r["outcome"] for r in stored) == local
        alerts = api.get("/api/v1/alerts", params={"limit": 1000}).json()
        assert len(alerts) == local["no_match"] and all(a["card_retained"] for a in alerts)

        web = dashboard_client(demo.registry.url, "auditor")
        page = web.get("/dashboard/failures", params={"outcome": "any"}).text
        assert re.search(rf'id="result-count">{n}<', page), "dashboard shows a different count"
        assert page.count('<tr class="o-') == n
        overview = web.get("/dashboard/").text
        assert re.search(rf'id="verifications-today">{n}<', overview)
        failures = web.get("/dashboard/failures").text
        assert re.search(rf'id="result-count">{n - local["match"] - local["delegate_match"]}<', failures)
        web.close()
        api.close()
    finally:
        demo.stop()


def test_demo_headless_runs_and_summarises(tmp_path):
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fpverify", "demo", "--headless", "--duration", "20", "--summary-json", str(out),
         "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Dashboard: http://127.0.0.1:" in proc.stdout and "==== summary ====" in proc.stdout
    s = json.loads(out.read_text())
    assert s["verifications"] > 10 and s["lost"] == 0 and s["verifications"] == s["recorded_at_stations"]
    for outcome in ("match", "no_match", "poor_quality", "delegate_match"):
        assert s["by_outcome"].get(outcome, 0) >= 1, (outcome, s["by_outcome"])
    assert s["alerts_raised"] == s["by_outcome"]["no_match"] and s["cards_retained"] == s["alerts_raised"]
    assert s["stations"]["rsp-counter-1"]["network_cuts"] == 1
    assert all(st["pending"] == 0 for st in s["stations"].values())
