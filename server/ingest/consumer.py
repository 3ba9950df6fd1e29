"""The MQTT consumer of the ingest: subscriptions, the message queue, batching and acknowledgements.

- Subscribes the plain results topic with a persistent session by default, or, with
  `mqtt_shared_subscription` (MQTT 5 only), `$share/registry/fpverify/v1/devices/+/results` so several
  registry processes share the load; plus `.../+/status` (plain: retained presence is not delivered
  to shared subscriptions). Plain is the default because Mosquitto 2.0.11 does not restore shared
  subscriptions from its persistence file: after a broker restart, results published before the
  registry resubscribed were dropped (tests/server/trust/test_faults.py). A plain persistent subscription
  is restored, so the broker queues them.
- Hands batches (`ingest_batch_size` messages or `ingest_batch_wait_ms`) to the `BatchWriter`
  (writer.py), which commits each in one transaction.
- Acknowledges (paho manual_ack) only after the batch is committed: a crash before the commit
  leaves the messages unacknowledged, so the broker redelivers them; duplicates are dropped.
  Database outages are retried with backoff; the consumer never dies on input.
- Its MQTT connection also publishes the template-feed notifications (`notifier`, notifier.py).
- With `ingest_broker = "rabbitmq"` the results and presence messages come instead from a durable
  quorum queue over AMQP (amqp.py, `AmqpSource`), which any number of workers share and which a
  broker restart keeps; the MQTT connection then only publishes the notifications (no subscription).
  The same rule holds: acknowledged only after the commit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fpverify.edge import wire
from fpverify.server.core.config import Settings
from fpverify.server.db import Database
from fpverify.server.ingest.notifier import FeedNotifier
from fpverify.server.ingest.writer import BatchWriter, Message, transient
from fpverify.server.trust.verify import ResultVerifier

log = logging.getLogger(__name__)

SHARE_GROUP = "registry"


def results_subscription(version: str, shared: bool = False) -> str:
    return f"$share/{SHARE_GROUP}/{wire.Topics.ALL_RESULTS}" if shared and version == "5" else wire.Topics.ALL_RESULTS


class IngestWorker:
    """MQTT in, `BatchWriter` out. `verifier` defaults to what the settings call for (writer.py)."""

    def __init__(self, db: Database, settings: Settings, verifier: ResultVerifier | None = None,
                 client_id: str | None = None, writer: BatchWriter | None = None):
        self.db = db
        self.settings = settings
        self.writer = writer or BatchWriter(db, settings, verifier)
        self.stats = self.writer.stats
        self.queue: queue.Queue[Message] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
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
        self.source = None  # the AMQP work queue, when results come from RabbitMQ
        if settings.ingest_broker == "rabbitmq":
            from fpverify.server.ingest.amqp import AmqpSource

            self.source = AmqpSource(settings, self._on_queued, client_id or settings.mqtt_client_id)

    @property
    def verifier(self) -> ResultVerifier | None:
        return self.writer.verifier

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> IngestWorker:
        self._thread = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._thread.start()
        if self.source is not None:
            self.source.start()
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
        """True once connected and subscribed (with a work queue: consuming it, and MQTT connected
        for the notifications)."""
        if self.source is None:
            return self._subscribed.wait(timeout)
        deadline = time.monotonic() + timeout
        return self.source.ready.wait(timeout) and self._connected.wait(max(0.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (commit and acknowledge), then disconnect. Messages still queued
        are not acknowledged: the broker delivers them again later."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.source is not None:
            self.source.stop()
        self.client.disconnect()
        self.client.loop_stop()

    # ---- MQTT callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._connected.set()
        self._notify_pending = True  # re-publish the feed version: heals notifications missed while away
        if self.source is not None:
            return  # results come from the work queue; this connection only publishes
        results = results_subscription(self.settings.mqtt_version, self.settings.mqtt_shared_subscription)
        client.subscribe([(results, 1), (wire.Topics.ALL_STATUS, 1)])

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

    def _on_queued(self, m: Message) -> None:
        """A delivery from the work queue (the AMQP source's thread)."""
        if self.stats.first_message_at is None:
            self.stats.first_message_at = time.monotonic()
        self.queue.put(m)

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
        """Write (retrying while the database is away), then acknowledge."""
        delay = 0.2
        while True:
            try:
                self.writer.write(batch)
                break
            except Exception as exc:  # noqa: BLE001 - only transient database errors reach here
                if not transient(exc):
                    raise
                self.stats.db_errors += 1
                self.stats.last_error = repr(exc)
                log.warning("database unavailable (%s); retrying in %.1fs", exc.__class__.__name__, delay)
                if self._stop.wait(delay):
                    return  # stopping: leave unacknowledged, the broker redelivers
                delay = min(delay * 2, 10)
        if self.source is not None:
            self.stats.acked += self.source.ack(batch)
            return
        for m in batch:
            if m.qos > 0:
                self.client.ack(m.mid, m.qos)
        self.stats.acked += len(batch)
