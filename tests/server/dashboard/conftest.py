"""The dashboard's fixtures: a seeded registry database and an HTTP client (English unless a test
says otherwise), and for the browser tests a running system: registry (SQLite) + private Mosquitto +
three real stations."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fpverify.demo.system import Demo
from fpverify.server.app import create_app
from fpverify.server.core.config import DashboardSettings
from fpverify.server.db import Database
from fpverify.services import PrivateMosquitto
from tests.server.dashboard import seed
from tests.server.dashboard.helpers import ARGS, CHROMIUM
from tests.server.helpers import make_settings


@pytest.fixture
def db(tmp_path):
    d = Database(settings=make_settings(f"sqlite:///{tmp_path / 'r.db'}"))  # national id key = seed.KEY
    d.create_all()
    seed.seed_users(d)
    seed.seed_world(d)
    yield d
    d.dispose()


@pytest.fixture
def client(db):
    with TestClient(create_app(db.settings, db), base_url="http://testserver") as c:
        c.cookies.set("fpv_lang", "en")  # most tests read English; test_office.py reads both
        yield c


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory):
    """The demo's system with a few holders enrolled; tests drive verifications themselves."""
    tmp = tmp_path_factory.mktemp("live")
    broker = PrivateMosquitto(tmp / "mosquitto").start()
    demo = Demo(tmp / "demo", holders=8, external_broker=(broker.port, "5"),
                registry_settings={"dashboard": DashboardSettings(refresh_s=1)})  # live tables: fast
    (tmp / "demo").mkdir()
    try:
        demo.start()
        h = demo.cast.holders
        demo.enroll_all([h[0], h[1]])
        for st in demo.stations.values():  # the pharmacy (another site) fetches a card when presented
            if st.site_id == "city-hospital":
                assert st.wait_templates(h[0].card, 60) and st.wait_templates(h[1].card, 60)
        yield demo
    finally:
        demo.stop()
        broker.stop()
