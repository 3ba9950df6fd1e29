"""A clerk's sign-in enrolled at a station (edge.enroll.Enroller.enroll_staff, `fpverify edge
enroll-staff`): the clerk's fingers through the simulated sensor and the real pyfingerprint, filed
at a real registry (the FastAPI app on SQLite under uvicorn) by a sysadmin, counted only once a
supervisor approves; the station's staff feed then carries the clerk. An enroller cannot file it."""

from __future__ import annotations

import pytest

from fpverify.edge.config import load_config
from fpverify.edge.enroll import Enroller, EnrollError
from fpverify.edge.sensor.driver import SensorDriver
from fpverify.edge.sensor.simulator import SimulatedSensor
from fpverify.edge.workflow import Engine
from fpverify.services import ServedApp
from tests.edge.helpers import HOLDER, write_config


@pytest.fixture
def registry(tmp_path):
    from fastapi.testclient import TestClient

    from fpverify.server.app import create_app
    from fpverify.server.crud import devices
    from fpverify.server.db import Database
    from tests.server.helpers import PASSWORD, login, make_settings, seed_users

    db = Database(settings=make_settings(f"sqlite:///{tmp_path / 'registry.db'}"))
    db.create_all()
    seed_users(db)
    with db.session() as s:
        _, token = devices.create_device(s, "console", "site-a", "desk-01", create_site_if_missing=True)
        s.commit()
    app = create_app(db.settings, db)
    served = ServedApp(app).start()
    client = TestClient(app)
    reg = type("Registry", (), {})()
    reg.url, reg.device_token, reg.client, reg.password = f"http://127.0.0.1:{served.port}", token, client, PASSWORD
    reg.headers = lambda role: {"Authorization": f"Bearer {login(client, role)}"}
    yield reg
    served.stop()
    db.dispose()


def _clerk_account(reg) -> int:
    r = reg.client.post("/api/v1/users", json={"username": "clerk.li", "role": "operator", "reason": "new clerk"},
                        headers=reg.headers("sysadmin"))
    assert r.status_code == 202, r.text
    reg.client.post(f"/api/v1/approvals/{r.json()['id']}/approve", json={}, headers=reg.headers("supervisor"))
    users = reg.client.get("/api/v1/users", headers=reg.headers("sysadmin")).json()
    return {u["username"]: u["id"] for u in users}["clerk.li"]


def _enroller(tmp_path, reg, sim):
    cfg = load_config(write_config(tmp_path / "st", registry_url=reg.url, sensor_port=sim.path,
                                   extra="capture_wait_s = 5"))
    driver = SensorDriver(sim.path, timeout_s=1.0)
    driver.open()
    return Enroller(cfg, Engine.for_station(cfg.station), driver, min_quality=20), driver


def test_a_clerk_enrolled_at_the_station_signs_in_after_approval(tmp_path, registry, fingers):
    uid = _clerk_account(registry)
    staff_feed = "/api/v1/devices/desk-01/staff"
    device = {"Authorization": f"Bearer {registry.device_token}"}
    with SimulatedSensor(images=fingers[HOLDER][:3]) as sim:
        enroller, driver = _enroller(tmp_path, registry, sim)
        try:
            enroller.login("sysadmin", registry.password)
            answer = enroller.enroll_staff(uid, "site-a", [2], impressions=3, pin="480715")
        finally:
            driver.close()
            enroller.close()
    assert answer["approval"]["status"] == "pending"
    # filed, not yet counted: the station's staff list has no credentials for the clerk
    before = registry.client.get(staff_feed, headers=device).json()
    assert not any(m["templates"] for m in before["staff"] if m["operator_id"] == "clerk.li")

    a = registry.client.post(f"/api/v1/approvals/{answer['approval']['id']}/approve", json={},
                             headers=registry.headers("supervisor"))
    assert a.json()["status"] == "executed", a.text
    after = registry.client.get(staff_feed, headers=device).json()
    member = next(m for m in after["staff"] if m["operator_id"] == "clerk.li")
    assert [t["finger"] for t in member["templates"]] == [2, 2, 2] and member["pin_hash"]
    assert "480715" not in str(after)


def test_only_a_sysadmin_files_a_clerks_sign_in(tmp_path, registry, fingers):
    uid = _clerk_account(registry)
    with SimulatedSensor(images=fingers[HOLDER][:3]) as sim:
        enroller, driver = _enroller(tmp_path, registry, sim)
        try:
            enroller.login("enroller", registry.password)
            with pytest.raises(EnrollError, match="only a sysadmin"):
                enroller.enroll_staff(uid, "site-a", [2], impressions=3, pin="480715")
        finally:
            driver.close()
            enroller.close()
