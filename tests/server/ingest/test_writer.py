"""The batch writer against a real PostgreSQL, no broker: one transaction per batch, idempotent,
dead letters with reasons, device state read at write time, alerts in the same transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from fpverify.bench import loadgen
from fpverify.edge import wire
from fpverify.edge.outbox import new_result_id
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from fpverify.server.ingest.writer import BatchWriter, Message
from fpverify.server.models import Alert, AuditEntry, DeadLetter, Device, VerificationRecord
from tests.server.ingest.helpers import migrated_db

DEVICES = ["desk-1", "desk-2", "desk-3"]


def make_db(url: str, mode: str = "development") -> Database:
    return migrated_db(url, DEVICES, mode=mode)


def result(device: str = "desk-1", **kw) -> wire.VerificationResult:
    data = dict(result_id=new_result_id(), device_id=device, site_id="site-1", card_number="C100200",
                outcome="match", purpose="billing", captured_at=datetime.now(UTC), score=0.31, threshold=0.1788)
    return wire.VerificationResult(**(data | kw))


def msg(r: wire.VerificationResult, topic_device: str | None = None) -> Message:
    return Message(wire.Topics(topic_device or r.device_id).results, r.model_dump_json().encode(), 0, 1)


def table(db: Database, model) -> list:
    with db.session() as s:
        return list(s.scalars(select(model)))


@pytest.fixture
def db(pg_url):
    d = make_db(pg_url)
    yield d
    d.dispose()


def test_batch_stored_once_with_dead_letters_and_alerts(db):
    load = loadgen.make_load(300, DEVICES, "site-1", duplicates=40, malformed=20, seed=5)
    w = BatchWriter(db, db.settings)
    msgs = [Message(t, p, 0, 1) for t, p in load.messages]
    w.write(msgs)
    again = [m for m in msgs if _valid(m, load)][:100]
    w.write(again)  # a redelivery after a lost acknowledgement changes nothing
    rows = table(db, VerificationRecord)
    assert {r.result_id for r in rows} == load.valid_ids and len(rows) == 300
    assert len(table(db, DeadLetter)) == 20
    alerts = table(db, Alert)
    assert {a.result_id for a in alerts if a.kind == "no_match"} == load.no_match_ids
    assert {a.kind for a in alerts} == {"no_match", "forged_result"}  # a body naming another device than its topic
    # scores on the matcher's scale, none where nothing was compared
    assert all(r.score is None or 0 <= r.score <= 1 for r in rows)
    assert {r.outcome for r in rows if r.score is None} == {"not_enrolled", "card_blocked", "poor_quality",
                                                            "sensor_error"}
    with db.session() as s:  # one audit row per committed batch
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ingest.batch")) == 1
    assert w.stats.stored == 300 and w.stats.duplicates == 40 + 100 and w.stats.batches == 2


def _valid(m: Message, load) -> bool:
    try:
        r = wire.VerificationResult.model_validate_json(m.payload)
    except ValueError:
        return False
    return r.result_id in load.valid_ids and wire.Topics.device_of(m.topic) == r.device_id


def test_a_value_the_database_refuses_is_isolated(db):
    w = BatchWriter(db, db.settings)
    good = [result() for _ in range(5)]
    bad = result(detail="NUL \x00 byte")  # valid JSON and schema, refused by PostgreSQL
    w.write([msg(r) for r in good[:2]] + [msg(bad)] + [msg(r) for r in good[2:]])
    assert {r.result_id for r in table(db, VerificationRecord)} == {r.result_id for r in good}
    [dead] = table(db, DeadLetter)
    assert dead.reason.startswith("internal error") and json.loads(dead.payload)["result_id"] == str(bad.result_id)


def test_disabled_device_refused_from_the_commit_on(pg_url, db):
    """The API (another Database: another process's connections) disables desk-2; the very next
    batch refuses its results with an alert. No cache: re-enabling works at once too."""
    w = BatchWriter(db, db.settings)
    w.write([msg(result("desk-2"))])  # desk-2 is known to this writer now
    api = Database(settings=db.settings)
    try:
        with api.session() as s:
            devices_crud.set_disabled(s, "admin", "desk-2", True)
            s.commit()
        refused = result("desk-2")
        w.write([msg(refused), msg(result("desk-1"))])
        stored = {r.result_id for r in table(db, VerificationRecord)}
        assert refused.result_id not in stored and len(stored) == 2
        [dead] = table(db, DeadLetter)
        assert "disabled" in dead.reason
        [alert] = [a for a in table(db, Alert) if a.kind == "disabled_device"]
        assert alert.device_id == "desk-2" and alert.result_id is None and str(refused.result_id) in alert.comment
        w.write([msg(result("desk-2"))])  # a flood gives one alert per device and kind a minute
        assert len([a for a in table(db, Alert) if a.kind == "disabled_device"]) == 1
        with api.session() as s:
            devices_crud.set_disabled(s, "admin", "desk-2", False)
            s.commit()
        back = result("desk-2")
        w.write([msg(back)])
        assert back.result_id in {r.result_id for r in table(db, VerificationRecord)}
    finally:
        api.dispose()


def test_retired_device_refused_and_never_enabled_again(db):
    from fpverify.server.crud.errors import Conflict

    w = BatchWriter(db, db.settings)
    with db.session() as s:
        devices_crud.retire_device(s, "admin", "desk-3")
        s.commit()
    late = result("desk-3")
    w.write([msg(late)])
    assert table(db, VerificationRecord) == []
    assert [d.reason for d in table(db, DeadLetter)] == ["unknown or disabled device 'desk-3' (retired)"]
    assert [(a.kind, a.device_id) for a in table(db, Alert)] == [("retired_device", "desk-3")]
    with db.session() as s:
        with pytest.raises(Conflict, match="retired"):
            devices_crud.set_disabled(s, "admin", "desk-3", False)


def test_result_naming_another_device_raises_forged_result(db):
    w = BatchWriter(db, db.settings)
    forged = result("desk-1")
    w.write([msg(forged, topic_device="desk-3")])  # desk-3's certificate published desk-1's "result"
    assert table(db, VerificationRecord) == []
    [dead] = table(db, DeadLetter)
    assert "does not match the topic" in dead.reason
    [alert] = table(db, Alert)
    assert alert.kind == "forged_result" and alert.device_id == "desk-3" and alert.card_number == forged.card_number


def test_production_mode_refuses_unsigned_results_without_a_ca(pg_url):
    db = make_db(pg_url, mode="production")
    try:
        w = BatchWriter(db, db.settings)  # no FPVERIFY_CA_DIR: nothing can be verified, so nothing is accepted
        w.write([msg(result()), msg(result(counter=7, signature="ecdsa-p256-sha256:AAAA"))])
        assert table(db, VerificationRecord) == []
        reasons = sorted(d.reason for d in table(db, DeadLetter))
        assert "unsigned" in reasons[1] and "no_certificate" in reasons[0], reasons
        assert [a.kind for a in table(db, Alert)] == ["forged_result"]  # one per device and kind
    finally:
        db.dispose()


def test_presence_updates_the_device_and_disabled_presence_is_refused(db):
    w = BatchWriter(db, db.settings)
    st = wire.DeviceStatus(device_id="desk-1", state="online", cache_version=4, at=datetime.now(UTC))
    w.write([Message(wire.Topics("desk-1").status, st.model_dump_json().encode())])
    with db.session() as s:
        d = s.get(Device, "desk-1")
        assert d.online and d.cache_version == 4
        devices_crud.set_disabled(s, "admin", "desk-3", True)
        s.commit()
    st3 = wire.DeviceStatus(device_id="desk-3", state="online")
    w.write([Message(wire.Topics("desk-3").status, st3.model_dump_json().encode())])
    with db.session() as s:
        assert not s.get(Device, "desk-3").online
    assert [d.reason for d in table(db, DeadLetter)] == ["unknown or disabled device 'desk-3' (disabled)"]
    assert table(db, Alert) == []  # presence alone raises nothing
