"""The staff list from a real registry (the FastAPI app on SQLite under uvicorn) into the station's
encrypted store over HTTP with the device token: the clerk enrolled by a sysadmin and approved by a
supervisor arrives, a shift opens with the PIN; the clerk is frozen at the registry, the next pull
ends the shift and the PIN is refused; another site's clerk never arrives; a bad token changes
nothing. On a Station, a TemplatesChanged notification makes both feeds pull."""

from __future__ import annotations

import base64

import pytest

from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import RegistrySection, ShiftSection
from fpverify.edge.kiosk.shift import Shift, SignInRefused
from fpverify.edge.staff import StaffStore, StaffSync
from fpverify.edge.sync import SyncError
from fpverify.services import ServedApp

PIN = "480715"


@pytest.fixture
def registry(tmp_path, fingers):
    from fastapi.testclient import TestClient

    from fpverify import matcher
    from fpverify.server.app import create_app
    from fpverify.server.crud import devices
    from fpverify.server.db import Database
    from tests.server.helpers import login, make_settings, seed_users

    db = Database(settings=make_settings(f"sqlite:///{tmp_path / 'registry.db'}"))
    db.create_all()
    seed_users(db)
    with db.session() as s:
        _, token = devices.create_device(s, "console", "site-a", "desk-01", create_site_if_missing=True)
        devices.create_site(s, "console", "site-b", "Another hospital")
        s.commit()
    app = create_app(db.settings, db)
    served = ServedApp(app).start()
    client = TestClient(app)
    tok = {r: login(client, r) for r in ("sysadmin", "supervisor")}

    def as_(who):
        return {"Authorization": f"Bearer {tok[who]}"}

    def clerk(name: str, site: str, image_seed: int) -> int:
        r = client.post("/api/v1/users", json={"username": name, "role": "operator", "reason": "new clerk"},
                        headers=as_("sysadmin"))
        client.post(f"/api/v1/approvals/{r.json()['id']}/approve", json={}, headers=as_("supervisor"))
        uid = {u["username"]: u["id"] for u in client.get("/api/v1/users", headers=as_("sysadmin")).json()}[name]
        templates = [base64.b64encode(matcher.extract(fingers[image_seed][k]).to_bytes()).decode() for k in range(3)]
        r = client.post(f"/api/v1/staff/{uid}/credentials", headers=as_("sysadmin"), json={
            "site_id": site, "pin": PIN, "reason": "in person",
            "fingers": [{"finger": 2, "templates": templates, "qualities": [80, 80, 80]}]})
        assert r.status_code == 202, r.text
        a = client.post(f"/api/v1/approvals/{r.json()['approval']['id']}/approve", json={}, headers=as_("supervisor"))
        assert a.json()["status"] == "executed", a.text
        return uid

    reg = type("Registry", (), {})()
    reg.url, reg.token, reg.client, reg.as_, reg.clerk = f"http://127.0.0.1:{served.port}", token, client, as_, clerk
    yield reg
    served.stop()
    db.dispose()


def _station_side(tmp_path, registry, token=None):
    store = Store.open(tmp_path / "station.db", new_key())
    staff = StaffStore(store)
    shift = Shift(ShiftSection(required=True), staff)
    sync = StaffSync(RegistrySection(url=registry.url), "desk-01", "site-a", staff, token or registry.token,
                     on_applied=shift.roster_changed)
    return store, staff, shift, sync


def test_a_freeze_at_the_registry_reaches_the_station(tmp_path, registry, fingers):
    from tests.edge.helpers import DELEGATE, HOLDER

    uid = registry.clerk("clerk.wang", "site-a", HOLDER)
    registry.clerk("clerk.far", "site-b", DELEGATE)
    store, staff, shift, sync = _station_side(tmp_path, registry)
    try:
        assert sync.sync_once() == set()
        assert staff.counts() == {"clerks": 1, "frozen": 0}
        assert staff.member("clerk.far") is None  # another site's clerk never arrives
        assert store.counts()["templates"] == 0  # nothing of the clerks in the patients' cache
        assert shift.open_with_pin("clerk.wang", PIN) == "clerk.wang"
        r = registry.client.post(f"/api/v1/users/{uid}/freeze", headers=registry.as_("sysadmin"))
        assert r.status_code == 200 and r.json()["frozen"]
        assert sync.sync_once() == {"clerk.wang"}
        assert shift.operator() is None and shift.note == "account_ended"
        with pytest.raises(SignInRefused) as refused:
            shift.open_with_pin("clerk.wang", PIN)
        assert refused.value.reason == "pin_wrong"
        assert staff.templates() == []
    finally:
        sync.stop()
        shift.close()
        store.close()


def test_a_bad_token_or_a_registry_away_changes_nothing(tmp_path, registry, fingers):
    from tests.edge.helpers import HOLDER

    registry.clerk("clerk.wang", "site-a", HOLDER)
    store, staff, shift, sync = _station_side(tmp_path, registry)
    sync.sync_once()
    bad = StaffSync(RegistrySection(url=registry.url), "desk-01", "site-a", staff, "not-the-token")
    away = StaffSync(RegistrySection(url="http://127.0.0.1:9", timeout_s=2), "desk-01", "site-a", staff, "x")
    other = StaffSync(RegistrySection(url=registry.url), "desk-02", "site-a", staff, registry.token)
    try:
        for s, why in ((bad, "401"), (away, "unreachable"), (other, "403")):
            with pytest.raises(SyncError, match=why):
                s.sync_once()
        assert staff.counts() == {"clerks": 1, "frozen": 0}
    finally:
        for s in (sync, bad, away, other):
            s.client.close()
        shift.close()
        store.close()


def test_station_pulls_the_staff_list_on_a_registry_notification(tmp_path, registry, fingers):
    from fpverify.edge.config import load_config
    from fpverify.edge.station import Station
    from fpverify.edge.wire import TemplatesChanged
    from tests.edge.helpers import HOLDER, write_config

    cfg_path = write_config(tmp_path / "st", registry_url=registry.url)
    (tmp_path / "st" / "device.token").write_text(registry.token + "\n")
    cfg = load_config(cfg_path)
    cfg.shift.staff_sync_s = 3600  # only the notification can make it pull within the test
    station = Station(cfg, sensor=None, engine=None, mqtt=False)
    station.start()
    try:
        assert station.staff_sync.synced.wait(20)  # the first pull at start: nobody yet
        assert station.staff.counts()["clerks"] == 0
        registry.clerk("clerk.wang", "site-a", HOLDER)
        station.staff_sync.synced.clear()
        station._registry_changed(TemplatesChanged(version=station.store.feed_version()))
        assert station.staff_sync.synced.wait(20)
        assert station.staff.member("clerk.wang").status == "active"
    finally:
        station.stop()
