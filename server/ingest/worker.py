"""MQTT ingest worker: station results and presence into the database.

- Subscribes the plain results topic with a persistent session by default, or, with
  `mqtt_shared_subscription` (MQTT 5 only), `$share/registry/fpverify/v1/devices/+/results` so several
  registry processes share the load; plus `.../+/status` (plain: retained presence is not delivered
  to shared subscriptions). Plain is the default because Mosquitto 2.0.11 does not restore shared
  subscriptions from its persistence file: after a broker restart, results published before the
  registry resubscribed were dropped (tests/server/trust/test_faults.py). A plain persistent subscription
  is restored, so the broker queues them.
- Validates each payload with `edge.wire` (the only module of `edge` the registry imports).
- Writes results idempotently by result_id (INSERT .. ON CONFLICT DO NOTHING), raises an alert
  for each newly stored no_match, and commits in batches for throughput.
- Acknowledges (paho manual_ack) only after the batch is committed: a crash before the commit
  leaves the messages unacknowledged, so the broker redelivers them; duplicates are dropped.
- Anything it cannot accept (bad JSON, schema violation, topic/payload mismatch, unknown
  device, rejected by the optional `verifier`) goes to the dead-letter table with the reason and
  the payload truncated to DEAD_LETTER_MAX bytes. Database outages are retried with backoff; the
  worker never dies on input.
- Its MQTT connection also publishes the template-feed notifications (`notifier`).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.core.config import Settings
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from fpverify.server.ingest.feed import FeedNotifier
from fpverify.server.models import Alert, AlertStatus, DeadLetter, Device, VerificationRecord, utcnow

log = logging.getLogger(__name__)

DEAD_LETTER_MAX = 4096
SHARE_GROUP = "registry"
# verifier(result, topic) -> None to accept, or the reason to reject (the trust layer's hook).
Verifier = Callable[[wire.VerificationResult, str], str | None]


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    statuses: int = 0
    alerts: int = 0
    batches: int = 0
    db_errors: int = 0
    acked: int = 0
    first_message_at: float | None = None  # time.monotonic() of the first message received
    last_error: str | None = None
    extra: dict = field(default_factory=dict)


def results_subscription(version: str, shared: bool = False) -> str:
    return f"$share/{SHARE_GROUP}/{wire.Topics.ALL_RESULTS}" if shared and version == "5" else wire.Topics.ALL_RESULTS


def _insert(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover
        raise RuntimeError(f"ingest supports PostgreSQL and SQLite, not {dialect}")
    return insert


def _short_reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {e.get('msg')}")
    return ("invalid message: " + "; ".join(parts))[:1000]


class IngestWorker:
    def __init__(self, db: Database, settings: Settings, verifier: Verifier | None = None,
                 client_id: str | None = None):
        self.db = db
        self.settings = settings
        self.verifier = verifier
        self.stats = Stats()
        self.queue: queue.Queue[Message] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._insert = _insert(db.engine.dialect.name)
        self._known_devices: set[str] = set()
        self._devices_loaded_at = 0.0
        self._notify_pending = False
        self.v5 = settings.mqtt_version == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or settings.mqtt_client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else False,
            manual_ack=True,
        )
        if settings.mqtt_username:
            pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, pw)
        if settings.mqtt_tls_ca:
            self.client.tls_set(ca_certs=str(settings.mqtt_tls_ca),
                                certfile=str(settings.mqtt_tls_cert) if settings.mqtt_tls_cert else None,
                                keyfile=str(settings.mqtt_tls_key) if settings.mqtt_tls_key else None)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.notifier = FeedNotifier(db.sessionmaker, self._publish)

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.is_alive() and not self._stop.is_set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> IngestWorker:
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 24 * 3600  # queue results while the registry restarts
            props.ReceiveMaximum = self.settings.ingest_receive_maximum
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port,
                                  keepalive=self.settings.mqtt_keepalive_s,
                                  clean_start=False if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=props)
        self.client.loop_start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once connected and subscribed."""
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (commit and acknowledge), then disconnect. Messages still queued
        are not acknowledged: the broker delivers them again later."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    # ---- MQTT callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._connected.set()
        client.subscribe([(results_subscription(self.settings.mqtt_version, self.settings.mqtt_shared_subscription), 1), (wire.Topics.ALL_STATUS, 1)])
        self._notify_pending = True  # re-publish the feed version: heals notifications missed while away

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            log.error("MQTT subscribe refused: %s", reason_codes)
            return
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        self._subscribed.clear()
        if not self._stop.is_set():
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):
        if self.stats.first_message_at is None:
            self.stats.first_message_at = time.monotonic()
        self.queue.put(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool):
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    # ---- writer thread --------------------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.ingest_batch_wait_ms / 1000
        while len(batch) < self.settings.ingest_batch_size:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:  # the inflow paused briefly: commit what we have instead of waiting out the deadline
                batch.append(self.queue.get(timeout=min(remaining, 0.005)))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._notify_pending:
                    self._notify_pending = False
                    self.notifier.notify()
                batch = self._next_batch()
                if batch:
                    self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self.stats.last_error = repr(exc)
                log.exception("ingest loop error")
                time.sleep(0.5)

    def _process(self, batch: list[Message]) -> None:
        delay = 0.2
        while True:
            try:
                try:
                    self._write(batch)
                except Exception as exc:  # noqa: BLE001
                    if _transient(exc):
                        raise
                    log.warning("batch failed (%r); isolating messages", exc)
                    self._write_one_by_one(batch)
                break
            except Exception as exc:  # noqa: BLE001 - only transient database errors reach here
                if not _transient(exc):
                    raise
                self.stats.db_errors += 1
                self.stats.last_error = repr(exc)
                log.warning("database unavailable (%s); retrying in %.1fs", exc.__class__.__name__, delay)
                if self._stop.wait(delay):
                    return  # stopping: leave unacknowledged, the broker redelivers
                delay = min(delay * 2, 10)
        for m in batch:
            if m.qos > 0:
                self.client.ack(m.mid, m.qos)
        self.stats.acked += len(batch)

    def _write_one_by_one(self, batch: list[Message]) -> None:
        for m in batch:
            try:
                self._write([m])
            except Exception as exc:  # noqa: BLE001
                if _transient(exc):
                    raise
                log.warning("message on %s refused by the database: %r", m.topic, exc)
                self._write([m], forced_reason=f"internal error: {exc!r}"[:1000])

    def _device_known(self, s, device_id: str) -> bool:
        if device_id in self._known_devices:
            return True
        now = time.monotonic()
        if now - self._devices_loaded_at > 1.0:
            self._known_devices = set(s.scalars(select(Device.id).where(Device.disabled.is_(False))))
            self._devices_loaded_at = now
        return device_id in self._known_devices

    def _write(self, batch: list[Message], forced_reason: str | None = None) -> None:
        received_at = utcnow()
        results: dict[uuid.UUID, dict] = {}
        dead: list[dict] = []
        statuses: list[wire.DeviceStatus] = []
        dup_in_batch = 0
        with self.db.sessionmaker() as s:
            for m in batch:
                reason = forced_reason
                if reason is None:
                    reason, parsed = self._parse(s, m)
                if reason is not None:
                    dead.append({"received_at": received_at, "topic": m.topic[:300], "reason": reason[:1000],
                                 "payload": m.payload[:DEAD_LETTER_MAX], "payload_size": len(m.payload)})
                elif isinstance(parsed, wire.DeviceStatus):
                    statuses.append(parsed)
                else:
                    if parsed.result_id in results:
                        dup_in_batch += 1
                        continue
                    results[parsed.result_id] = _row(parsed, received_at)
            inserted: list[uuid.UUID] = []
            if results:
                inserted = self._insert_results(s, list(results.values()))
                devices = sorted({r["device_id"] for r in results.values()})
                s.execute(update(Device).where(Device.id.in_(devices)).values(last_seen=received_at))
            alerts = [_alert(results[rid]) for rid in inserted if results[rid]["outcome"] == wire.Outcome.NO_MATCH]
            if alerts:
                s.execute(self._insert(Alert).on_conflict_do_nothing(index_elements=["result_id"]), alerts)
            if dead:
                s.execute(self._insert(DeadLetter), dead)
            for st in statuses:
                devices_crud.record_presence(s, st.device_id, st.state, st.at, st.cache_version, st.software_version)
            if inserted or dead:
                ids = "".join(sorted(str(i) for i in inserted))
                audit.record(s, "mqtt-ingest", "ingest.batch", "verification_results",
                             f"{len(inserted)} stored", None,
                             {"stored_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
                              "dead_letters": len(dead)},
                             note=f"stored={len(inserted)} duplicates={len(results) - len(inserted) + dup_in_batch}"
                                  f" dead={len(dead)} alerts={len(alerts)}")
            s.commit()
        st_ = self.stats
        st_.received += len(batch)
        st_.stored += len(inserted)
        st_.duplicates += len(results) - len(inserted) + dup_in_batch
        st_.dead_lettered += len(dead)
        st_.statuses += len(statuses)
        st_.alerts += len(alerts)
        st_.batches += 1

    def _insert_results(self, s, rows: list[dict]) -> list[uuid.UUID]:
        """INSERT .. ON CONFLICT (result_id) DO NOTHING; returns the ids actually inserted."""
        if self.db.engine.dialect.name == "postgresql":
            # One statement with one array per column: psycopg need not parse a multi-thousand
            # placeholder VALUES list per batch (3-4x faster than executemany here).
            params = {c: [r[c] for r in rows] for c in _PG_COLUMNS}
            return list(s.scalars(_PG_UNNEST_INSERT, params))
        stmt = self._insert(VerificationRecord).on_conflict_do_nothing(index_elements=["result_id"])
        return list(s.scalars(stmt.returning(VerificationRecord.result_id), rows))

    def _parse(self, s, m: Message):
        """(None, message) when acceptable, else (reason, None)."""
        device = wire.Topics.device_of(m.topic)
        kind = m.topic.rsplit("/", 1)[-1]
        if device is None or kind not in ("results", "status"):
            return f"unexpected topic {m.topic[:200]}", None
        try:
            msg = (wire.VerificationResult if kind == "results" else wire.DeviceStatus).model_validate_json(m.payload)
        except ValidationError as exc:
            return _short_reason(exc), None
        except ValueError as exc:  # pragma: no cover - pydantic wraps JSON errors in ValidationError
            return f"invalid message: {exc}"[:1000], None
        if msg.device_id != device:
            return f"device_id {msg.device_id!r} does not match the topic's device {device!r}", None
        if not self._device_known(s, device):
            return f"unknown or disabled device {device!r}", None
        if kind == "results" and self.verifier is not None:
            why = self.verifier(msg, m.topic)
            if why:
                return f"rejected: {why}"[:1000], None
        return None, msg


_PG_COLUMNS = {
    "result_id": "uuid", "device_id": "text", "site_id": "text", "card_number": "text", "outcome": "text",
    "purpose": "text", "captured_at": "timestamptz", "received_at": "timestamptz", "score": "float8",
    "threshold": "float8", "finger": "int4", "delegate_id": "text", "attempts": "int4", "quality": "int4",
    "operator_id": "text", "detail": "text", "counter": "int8", "signature": "text",
}
_PG_UNNEST_INSERT = text(
    f"INSERT INTO verification_results ({', '.join(_PG_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _PG_COLUMNS.items())}) "
    "ON CONFLICT (result_id) DO NOTHING RETURNING result_id"
)


def _transient(exc: BaseException) -> bool:
    """Database down or busy (retry the batch) as opposed to a statement one message caused."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _row(r: wire.VerificationResult, received_at) -> dict:
    return {
        "result_id": r.result_id, "device_id": r.device_id, "site_id": r.site_id, "card_number": r.card_number,
        "outcome": r.outcome.value, "purpose": r.purpose.value, "captured_at": r.captured_at,
        "received_at": received_at, "score": r.score, "threshold": r.threshold, "finger": r.finger,
        "delegate_id": r.delegate_id, "attempts": r.attempts, "quality": r.quality, "operator_id": r.operator_id,
        "detail": r.detail, "counter": r.counter, "signature": r.signature,
    }


def _alert(row: dict) -> dict:
    """A no_match: the desk retained the card; the insurance office must follow up."""
    return {"kind": "no_match", "result_id": row["result_id"], "card_number": row["card_number"],
            "device_id": row["device_id"], "site_id": row["site_id"], "card_retained": True,
            "raised_at": row["received_at"], "status": AlertStatus.OPEN}
