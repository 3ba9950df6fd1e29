"""A running system for the browser tests: registry (SQLite) + private Mosquitto + three real stations."""

from __future__ import annotations

import pytest

from fpverify.demo import Demo
from fpverify.server.dashboard.settings import DashboardSettings
from tests.services import Mosquitto


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory):
    """The demo's system with a few holders enrolled; tests drive verifications themselves."""
    tmp = tmp_path_factory.mktemp("live")
    broker = Mosquitto(tmp / "mosquitto").start()
    demo = Demo(tmp / "demo", holders=8, external_broker=(broker.port, "5"))
    (tmp / "demo").mkdir()
    try:
        demo.start()
        demo.registry.app.state.dashboard_settings = DashboardSettings(refresh_s=1)  # live tables: fast
        h = demo.cast["holders"]
        demo.enroll_all([h[0], h[1]])
        for st in demo.stations.values():
            assert st.wait_templates(h[0].card, 60) and st.wait_templates(h[1].card, 60)
        yield demo
    finally:
        demo.stop()
        broker.stop()
