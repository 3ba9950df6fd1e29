"""A hospital system (HIS) checks a visit at the registry by result id, on PostgreSQL: its service
account is made through the four-eyes approval, a result the station signed and queued is ingested
with its signature checked, and the HIS reads exactly what the station told it, and nothing else."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from fpverify.edge import wire
from fpverify.edge.cache import Store, new_key
from fpverify.edge.outbox import Outbox
from fpverify.edge.signing import ResultSigner
from fpverify.server import schemas
from fpverify.server.app import create_app
from fpverify.server.db import Database
from fpverify.server.ingest.writer import BatchWriter, Message
from fpverify.server.models import VerificationRecord, utcnow
from fpverify.server.models.results import record_row
from tests.server.dashboard.helpers import CSRF
from tests.server.helpers import PASSWORD, auth, login, make_settings, seed_users
from tests.server.trust.helpers import result

PREFIX = "/api/v1"
CARD = "CARD0042"
HIS_FIELDS = {*schemas.HIS_RESULT_FIELDS, "signature"}


@pytest.fixture
def registry(pg_url, pki):
    """The registry on PostgreSQL in production mode with its CA folder: ingest checks signatures."""
    db = Database(settings=make_settings(pg_url, ca_dir=pki.dir))
    db.migrate()
    ids = seed_users(db)
    with db.session() as s:
        from fpverify.server.crud import devices as devices_crud

        devices_crud.create_device(s, "test", "hosp-a", "desk-a", create_site_if_missing=True)
        s.commit()
    with TestClient(create_app(db.settings, db)) as c:
        c.ids = ids
        yield c
    db.dispose()


@pytest.fixture
def station(pki, tmp_path):
    """desk-a's encrypted store and signing outbox: what the station queues is what it publishes."""
    store = Store.open(tmp_path / "desk-a.db", new_key())
    yield Outbox(store, signer=ResultSigner.from_files(pki.key("desk-a"), "desk-a", pki.crt("desk-a")))
    store.close()


def _his_account(c) -> str:
    """A HIS service account as every account is made: a sysadmin asks, a supervisor approves and
    receives the one-time password, the integrator chooses the account's own at the first login."""
    sys_h, sup_h = auth(login(c, "sysadmin")), auth(login(c, "supervisor"))
    r = c.post(f"{PREFIX}/users", json={"username": "billing-his", "role": "his", "reason": "billing checks"},
               headers=sys_h)
    assert r.status_code == 202 and r.json()["one_time_password"] is None, r.text
    assert c.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={}, headers=sys_h).status_code == 403
    otp = c.post(f"{PREFIX}/approvals/{r.json()['id']}/approve", json={}, headers=sup_h).json()["one_time_password"]
    assert otp
    r = c.post(f"{PREFIX}/auth/password", json={"username": "billing-his", "password": otp,
                                                 "new_password": "his integration secret"})
    assert r.status_code == 200 and r.json()["role"] == "his", r.text
    return r.json()["access_token"]


def _ingest(c, outbox: Outbox) -> None:
    """The station's queued messages, as published, through the registry's batch writer."""
    pending = outbox.pending()
    msgs = [Message(wire.Topics("desk-a").results, p.payload, 0, 1) for p in pending]
    writer = BatchWriter(c.app.state.db, c.app.state.settings)
    writer.write(msgs)
    assert writer.stats.stored == len(msgs) and writer.stats.dead_lettered == 0
    outbox.ack([p.seq for p in pending])


def test_his_reads_the_result_the_station_gave_it(registry, station):
    c = registry
    for outcome, purpose in (("match", "billing"), ("no_match", "pharmacy")):
        station.add(result(device_id="desk-a", site_id="hosp-a", card_number=CARD, outcome=outcome,
                           purpose=purpose, operator_id="clerk-07", finger=2))
    told = station.last_recorded  # the station's answer to its HIS carries this result (signed)
    assert told.signature and told.counter
    _ingest(c, station)
    his = auth(_his_account(c))

    r = c.get(f"{PREFIX}/his/results/{told.result_id}", headers=his)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == HIS_FIELDS  # no score, finger, quality, delegate, detail, counter or signature blob
    assert got == {"result_id": str(told.result_id), "outcome": "no_match", "card_number": CARD,
                   "device_id": "desk-a", "site_id": "hosp-a", "captured_at": got["captured_at"],
                   "purpose": "pharmacy", "operator_id": "clerk-07", "signature": "verified"}
    assert datetime.fromisoformat(got["captured_at"]) == told.captured_at  # the same instant

    # unknown and malformed ids: a clear answer, never another result
    missing = uuid.uuid4()
    assert c.get(f"{PREFIX}/his/results/{missing}", headers=his).status_code == 404
    assert c.get(f"{PREFIX}/his/results/not-a-uuid", headers=his).status_code == 422

    # every read is in the audit log, the miss too (a stolen token probing ids shows as misses)
    reads = [e for e in c.get(f"{PREFIX}/audit?entity=verification_result",
                              headers=auth(login(c, "auditor"))).json() if e["action"] == "his.result.read"]
    assert [(e["actor"], e["entity_id"], e["note"]) for e in reads] == [
        ("billing-his", str(told.result_id), None), ("billing-his", str(missing), "not found")]

    # the account reaches nothing else: not the office's result list or record, no card holder,
    # no template metadata, no alerts, no devices, no dashboard
    for path in (f"/results/{told.result_id}", f"/results?card_number={CARD}", f"/cardholders/{CARD}",
                 f"/cardholders/{CARD}/templates", "/alerts", "/devices", "/sites", "/audit", "/users"):
        assert c.get(PREFIX + path, headers=his).status_code == 403, path
    assert c.post(f"{PREFIX}/alerts/1/acknowledge", json={}, headers=his).status_code == 403
    form = CSRF.search(c.get("/dashboard/login").text).group(1)
    page = c.post("/dashboard/login", data={"username": "billing-his", "password": "his integration secret",
                                            "csrf_token": form}, follow_redirects=False)
    assert page.status_code == 403 and "fpv_session" not in page.cookies, page.status_code

    # a frozen account reads nothing; its token ends at once
    users = {u["username"]: u for u in c.get(f"{PREFIX}/users", headers=auth(login(c, "sysadmin"))).json()}
    assert c.post(f"{PREFIX}/users/{users['billing-his']['id']}/freeze",
                  headers=auth(login(c, "sysadmin"))).status_code == 200
    assert c.get(f"{PREFIX}/his/results/{told.result_id}", headers=his).status_code == 401


def test_office_roles_do_not_use_the_his_route(registry, station):
    """The office reads results on its own routes; /his/ is the HIS role's alone (least privilege
    both ways: a supervisor's token in a billing system would read far more than it needs)."""
    c = registry
    station.add(result(device_id="desk-a", site_id="hosp-a", card_number=CARD, outcome="match"))
    _ingest(c, station)
    rid = station.last_recorded.result_id
    for role in ("sysadmin", "enroller", "auditor", "supervisor"):
        assert c.get(f"{PREFIX}/his/results/{rid}", headers=auth(login(c, role))).status_code == 403, role
    assert c.get(f"{PREFIX}/his/results/{rid}").status_code == 401
    assert c.get(f"{PREFIX}/results/{rid}", headers=auth(login(c, "auditor"))).json()["score"] is not None


def test_signature_status_without_a_ca_folder(pg_url):
    """Development without FPVERIFY_CA_DIR stores signed results unchecked: the HIS is told so."""
    db = Database(settings=make_settings(pg_url, mode="development"))
    db.migrate()
    seed_users(db)
    signed = result(device_id="desk-a", site_id="hosp-a", counter=7, signature="ecdsa-p256:AAAA")
    plain = result(device_id="desk-a", site_id="hosp-a")
    with db.session() as s:
        s.add_all([VerificationRecord(**record_row(r, utcnow())) for r in (signed, plain)])
        s.commit()
    try:
        with TestClient(create_app(db.settings, db)) as c:
            h = auth(login(c, "his", PASSWORD))
            got = {r.result_id: c.get(f"{PREFIX}/his/results/{r.result_id}", headers=h).json()["signature"]
                   for r in (signed, plain)}
        assert got == {signed.result_id: "not_checked", plain.result_id: "unsigned"}
    finally:
        db.dispose()
