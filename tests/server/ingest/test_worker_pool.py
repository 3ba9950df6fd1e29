"""Several ingest workers on one durable queue (issue 18): a real RabbitMQ (MQTT plugin, quorum
queue), two real IngestWorkers on PostgreSQL, simulated stations that publish like the outbox
(reconnect, republish what was not acknowledged). The broker is restarted, or crashes, mid-stream;
every result must be stored exactly once and both workers must have done part of the work."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from fpverify.bench import loadgen
from fpverify.server.core.config import Settings
from fpverify.server.ingest.amqp import BINDINGS, AmqpSource, routing_key, topic_of
from fpverify.server.ingest.consumer import IngestWorker
from fpverify.server.models import DeadLetter, VerificationRecord
from fpverify.services import PrivateRabbitMQ
from tests.server.ingest.helpers import migrated_db

N = 3000
DEVICES = [f"desk-{i:02d}" for i in range(12)] + ["desk.dotted"]


def test_topics_map_to_routing_keys_and_back():
    # RabbitMQ 3.10's MQTT plugin turns "/" into "." and keeps dots: a dotted device id spans words
    topic = "fpverify/v1/devices/desk.dotted/results"
    assert routing_key(topic) == "fpverify.v1.devices.desk.dotted.results"
    assert topic_of(routing_key(topic)) == topic
    assert topic_of("fpverify.v1.devices.desk/dotted.status") == "fpverify/v1/devices/desk.dotted/status"
    assert topic_of("fpverify.v1.devices.results") == "fpverify.v1.devices.results"  # no device: refused
    assert BINDINGS == ("fpverify.v1.devices.#.results", "fpverify.v1.devices.#.status")


def test_rabbitmq_ingest_needs_its_url():
    with pytest.raises(ValueError, match="FPVERIFY_INGEST_AMQP_URL"):
        Settings(ingest_broker="rabbitmq")


def _settings(broker) -> dict:
    return {"mode": "development", "ingest_broker": "rabbitmq", "ingest_amqp_url": broker.amqp_url,
            "mqtt_port": broker.mqtt_port, "mqtt_version": "3.1.1", "ingest_batch_size": 100}


def _counts(db) -> tuple[int, int, int]:
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(VerificationRecord))
        distinct = s.scalar(select(func.count(func.distinct(VerificationRecord.result_id))))
        dead = s.scalar(select(func.count()).select_from(DeadLetter))
    return rows, distinct, dead


def test_amqp_url_errors_name_the_setting_and_amqps_logs_in_by_certificate():
    import pika.credentials

    with pytest.raises(ValueError, match="FPVERIFY_INGEST_AMQP_URL is not a usable AMQP URL"):
        Settings(ingest_broker="rabbitmq", ingest_amqp_url="amqp://u:p@broker/%2F?no_such_option=1")
    bad = Settings(ingest_broker="rabbitmq", ingest_amqp_url="amqp://u:p@broker/%2F")
    bad.ingest_amqp_url = SecretStr("amqp://u:p@broker/%2F?no_such_option=1")  # past the settings check
    with pytest.raises(ValueError, match="FPVERIFY_INGEST_AMQP_URL is not a usable AMQP URL"):
        AmqpSource(bad, lambda m: None, "w")
    tls = AmqpSource(Settings(ingest_broker="rabbitmq", ingest_amqp_url="amqps://broker1:5671/fpverify"),
                     lambda m: None, "w")
    assert (tls.params.host, tls.params.port, tls.params.virtual_host) == ("broker1", 5671, "fpverify")
    assert tls.params.ssl_options is not None
    assert isinstance(tls.params.credentials, pika.credentials.ExternalCredentials)


def _queue_state(broker, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of the work queue, for a failure's message."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        ok = conn.channel().queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count
    finally:
        conn.close()


def _wait(what, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(step)
    return False


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_two_workers_store_every_result_once_across_a_broker_restart(pg_url, tmp_path, crash):
    broker = PrivateRabbitMQ(tmp_path / "rabbit").start()
    workers: list[IngestWorker] = []
    try:
        db = migrated_db(pg_url, DEVICES, **_settings(broker))
        workers = [IngestWorker(db, db.settings, client_id=f"registry-{k}").start() for k in range(2)]
        assert all(w.wait_ready(60) for w in workers), [w.stats.last_error for w in workers]
        time.sleep(3)  # the queue the workers just declared is on disk within 2 s (test_services.py)
        load = loadgen.make_load(N, DEVICES, "site-1", duplicates=150, malformed=20, seed=18)
        failure: list[BaseException] = []

        def stations() -> None:
            try:
                loadgen.publish_reliably("127.0.0.1", broker.mqtt_port, load.messages, clients=4, version="3.1.1",
                                         window=50, resend_after_s=20, timeout=400)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failure.append(exc)

        pub = threading.Thread(target=stations, daemon=True)
        pub.start()
        assert _wait(lambda: _counts(db)[0] >= N // 3, 120), "ingest did not start"
        before = _counts(db)[0]
        assert before < N, "the stream ended before the restart: make N larger"
        broker.restart(crash=crash)
        pub.join(400)
        assert not pub.is_alive() and not failure, failure
        assert _wait(lambda: _counts(db)[0] >= N and _counts(db)[2] >= 20, 180, 0.5), (
            _counts(db), _queue_state(broker, db.settings.ingest_queue),
            [(w.stats, w.source.ready.is_set(), w.queue.qsize()) for w in workers])
        time.sleep(2)  # anything still redelivered would show up as a second row now
        rows, distinct, dead = _counts(db)
        with db.session() as s:
            stored = set(s.scalars(select(VerificationRecord.result_id)))
        assert rows == distinct == N  # exactly once: no loss, no second row
        assert stored == load.valid_ids
        assert dead >= 20  # every malformed payload (a redelivered one is dead-lettered again)
        assert all(w.stats.stored > 0 for w in workers), [w.stats.stored for w in workers]
        assert sum(w.stats.stored for w in workers) == N
        assert all(w.running for w in workers)
    finally:
        for w in workers:
            w.stop()
        broker.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_worker_killed_mid_stream_leaves_its_share_to_the_other(pg_url, tmp_path):
    """One worker is a process killed with SIGKILL mid-stream (batches in hand, unacknowledged)
    while the broker restarts too: the survivor stores the rest, each result once."""
    import multiprocessing

    from tests.server.ingest.helpers import run_worker

    broker = PrivateRabbitMQ(tmp_path / "rabbit").start()
    survivor = None
    victim = None
    try:
        db = migrated_db(pg_url, DEVICES, **_settings(broker))
        ctx = multiprocessing.get_context("spawn")
        victim_ready = ctx.Event()
        victim = ctx.Process(
            target=run_worker, args=(pg_url, "registry-victim", _settings(broker), victim_ready), daemon=True)
        victim.start()
        survivor = IngestWorker(db, db.settings, client_id="registry-survivor").start()
        assert survivor.wait_ready(60)
        # a spawned process imports everything first: on a loaded machine that took longer than the
        # survivor needed for the whole load, so the victim had nothing to lose
        assert victim_ready.wait(120), "the victim worker never consumed"
        time.sleep(3)  # the queue's definition on disk (see above); the victim connects meanwhile
        load = loadgen.make_load(N, DEVICES, "site-1", duplicates=150, malformed=0, seed=19)
        pub = threading.Thread(target=loadgen.publish_reliably, args=("127.0.0.1", broker.mqtt_port, load.messages),
                               kwargs={"clients": 4, "version": "3.1.1", "window": 50, "timeout": 400}, daemon=True)
        pub.start()
        assert _wait(lambda: _counts(db)[0] >= N // 4, 120), "ingest did not start"
        victim.kill()
        victim.join(10)
        broker.restart()
        pub.join(400)
        assert not pub.is_alive()
        assert _wait(lambda: _counts(db)[0] >= N, 180, 0.5), (_counts(db), survivor.stats)
        time.sleep(2)
        rows, distinct, _dead = _counts(db)
        with db.session() as s:
            assert set(s.scalars(select(VerificationRecord.result_id))) == load.valid_ids
        assert rows == distinct == N
        assert 0 < survivor.stats.stored < N  # the victim had stored its part before it died
    finally:
        if victim is not None and victim.is_alive():
            victim.kill()
        if survivor is not None:
            survivor.stop()
        broker.stop()
