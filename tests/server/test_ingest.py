"""MQTT ingestion against a real Mosquitto and a real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from fpverify.bench import loadgen
from fpverify.edge import wire
from fpverify.server.db import Database
from fpverify.server.ingest.consumer import IngestWorker
from fpverify.server.ingest.writer import BatchWriter
from fpverify.server.models import Alert, DeadLetter, Device, VerificationRecord
from fpverify.services import BROKER_CONF
from tests.server.ingest.helpers import migrated_db

DEVICES = [f"ward-{i:02d}" for i in range(50)]


def wait_until(cond, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(VerificationRecord)),
                s.scalar(select(func.count()).select_from(DeadLetter)))


def setup_db(url: str, broker, version: str = "5", client_id: str = "registry-test") -> Database:
    # The load is unsigned (signed ingest: tests/server/trust): development mode accepts it.
    return migrated_db(url, DEVICES, mqtt_port=broker.port, mqtt_version=version, mqtt_client_id=client_id,
                       mode="development")


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(conf=BROKER_CONF)


@pytest.mark.slow
def test_ten_thousand_results_from_fifty_devices(pg_url, broker):
    db = setup_db(pg_url, broker)
    worker = IngestWorker(db, db.settings).start()
    try:
        assert worker.wait_ready(30)
        # 10,000 messages: 9,400 distinct results, 500 re-sent duplicates, 100 malformed payloads
        load = loadgen.make_load(9400, DEVICES, "site-1", duplicates=500, malformed=100, seed=7)
        assert len(load.messages) == 10_000
        loadgen.publish(broker.host, broker.port, load.messages, clients=5)
        wait_until(lambda: counts(db) == (9400, 100), 180, "all results stored and malformed dead-lettered")
        time.sleep(1.0)  # nothing more may trickle in (no duplicate rows, no extra dead letters)
        assert counts(db) == (9400, 100)
        with db.session() as s:
            stored = set(s.scalars(select(VerificationRecord.result_id)))
            reasons = list(s.scalars(select(DeadLetter.reason)))
            alerts = set(s.scalars(select(Alert.result_id).where(Alert.kind == "no_match")))
            forged = list(s.scalars(select(Alert).where(Alert.kind == "forged_result")))
            dl = s.scalars(select(DeadLetter).order_by(DeadLetter.payload_size.desc())).first()
        assert stored == load.valid_ids
        assert alerts == load.no_match_ids  # each newly stored no_match raised one alert
        # results naming another device than their topic: forgeries, alerted against the publisher
        assert forged and all(a.result_id is None and "does not match the topic" in a.comment for a in forged)
        assert all(r for r in reasons)
        assert any("does not match the topic" in r for r in reasons)
        assert any("unknown or disabled device" in r for r in reasons)
        assert any("Invalid JSON" in r for r in reasons)
        assert dl.payload_size > 50_000 and len(dl.payload) == 4096  # kept, truncated
        assert worker.running
        assert worker.stats.stored == 9400 and worker.stats.dead_lettered == 100
        # still working afterwards
        r = wire.VerificationResult(result_id=uuid.uuid4(), device_id=DEVICES[3], site_id="site-1",
                                    card_number="C777777", outcome="match", purpose="billing",
                                    captured_at=datetime.now(UTC))
        loadgen.publish(broker.host, broker.port, [(wire.Topics(DEVICES[3]).results, r.model_dump_json().encode())],
                        clients=1)
        wait_until(lambda: counts(db)[0] == 9401, 30, "one more result")
        with db.session() as s:
            assert s.get(Device, DEVICES[3]).last_seen is not None
    finally:
        worker.stop()
        db.dispose()


def test_presence_and_mqtt311(sqlite_url, broker):
    db = setup_db(sqlite_url, broker, version="3.1.1")
    worker = IngestWorker(db, db.settings).start()
    try:
        assert worker.wait_ready(30)
        st = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICES[0], protocol=mqtt.MQTTv311)
        topic = wire.Topics(DEVICES[0]).status
        st.will_set(topic, wire.DeviceStatus(device_id=DEVICES[0], state="offline").model_dump_json(), 1, True)
        st.connect(broker.host, broker.port)
        st.loop_start()
        st.publish(topic, wire.DeviceStatus(device_id=DEVICES[0], state="online", cache_version=12,
                                            at=datetime.now(UTC)).model_dump_json(), 1, True).wait_for_publish(10)

        def online():
            with db.session() as s:
                d = s.get(Device, DEVICES[0])
                return d.online and d.cache_version == 12

        wait_until(online, 30, "device online")
        st._sock.close()  # vanish without DISCONNECT: the broker publishes the will
        st.loop_stop()

        def offline():
            with db.session() as s:
                return not s.get(Device, DEVICES[0]).online

        wait_until(offline, 90, "device offline via last will")
        # MQTT 3.1.1 results (plain subscription) are ingested too
        load = loadgen.make_load(200, DEVICES[:5], "site-1", duplicates=20, malformed=5, seed=3)
        loadgen.publish(broker.host, broker.port, load.messages, clients=2, version="3.1.1")
        wait_until(lambda: counts(db) == (200, 5), 60, "3.1.1 results stored")
    finally:
        worker.stop()
        db.dispose()


def test_worker_restart_loses_nothing(sqlite_url, broker):
    """Messages not yet committed when the worker goes away are redelivered to the next one."""
    db = setup_db(sqlite_url, broker, client_id="registry-restart")
    db.settings.ingest_batch_size = 50

    class SlowWriter(BatchWriter):  # slow enough that the worker is surely stopped mid-stream
        def _write(self, batch, forced=None):
            time.sleep(0.05)
            super()._write(batch, forced)

    w1 = IngestWorker(db, db.settings, writer=SlowWriter(db, db.settings)).start()
    assert w1.wait_ready(30)
    load = loadgen.make_load(3000, DEVICES, "site-1", duplicates=100, malformed=0, seed=11)
    loadgen.publish(broker.host, broker.port, load.messages, clients=3)
    wait_until(lambda: counts(db)[0] > 0, 30, "first results")
    w1.stop()  # stops mid-stream: queued but uncommitted messages stay unacknowledged
    stored_before = counts(db)[0]
    w2 = IngestWorker(db, db.settings).start()
    try:
        assert w2.wait_ready(30)
        wait_until(lambda: counts(db)[0] == 3000, 120, "all results after restart")
        with db.session() as s:
            assert set(s.scalars(select(VerificationRecord.result_id))) == load.valid_ids
        assert 0 < stored_before < 3000
    finally:
        w2.stop()
        db.dispose()
