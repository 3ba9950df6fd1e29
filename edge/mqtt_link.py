"""MQTT link (paho-mqtt 2.x): drains the outbox to the broker, QoS 1, and listens for template news.

paho keeps its session (unacknowledged publishes) in memory only; durability is the outbox's job.
One publisher thread owns all the link's state: it maps paho message ids to outbox rows, deletes a
row only when its PUBACK arrives with a success code, keeps at most `window` results in flight and
republishes anything unacknowledged after a restart or after `resend_after_s`. paho's callbacks
only queue events for it, so no lock is held across a paho call (paho calls on_publish while it
holds its own message lock; taking ours there could deadlock against publish()).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from fpverify.edge.config import MqttSection
from fpverify.edge.outbox import Outbox
from fpverify.edge.wire import DeviceStatus, TemplatesChanged, Topics

log = logging.getLogger("fpverify.edge.mqtt")

FAILED_RETRY_S = 5.0  # after a negative PUBACK (e.g. not authorised) wait before trying that row again


class MqttLink:
    def __init__(self, cfg: MqttSection, device_id: str, outbox: Outbox, password: str | None = None,
                 on_templates_changed: Callable[[TemplatesChanged], None] | None = None,
                 cache_version: Callable[[], int | None] | None = None,
                 software_version: str | None = None) -> None:
        if not cfg.host:
            raise ValueError("mqtt.host is not configured")
        self.cfg = cfg
        self.device_id = device_id
        self.topics = Topics(device_id)
        self.outbox = outbox
        self.on_templates_changed = on_templates_changed
        self.cache_version = cache_version or (lambda: None)
        self.software_version = software_version
        self.connected = threading.Event()
        self.acked_total = 0
        self.last_error: str | None = None
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: dict[int, tuple[int, float]] = {}  # paho mid -> (outbox seq, sent at)
        self._inflight_seqs: set[int] = set()
        self._retry_at: dict[int, float] = {}  # seq -> monotonic time it may be sent again
        self._thread: threading.Thread | None = None
        self.client = self._make_client(password)

    # -- paho client ---------------------------------------------------------------------------
    def _make_client(self, password: str | None) -> mqtt.Client:
        cfg = self.cfg
        protocol = mqtt.MQTTv5 if cfg.version == "5" else mqtt.MQTTv311
        kwargs = {} if protocol == mqtt.MQTTv5 else {"clean_session": True}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=protocol,
                             reconnect_on_failure=True, **kwargs)
        if cfg.username:
            client.username_pw_set(cfg.username, password)
        if cfg.ca_file:
            client.tls_set(ca_certs=str(cfg.ca_file),
                           certfile=str(cfg.cert_file) if cfg.cert_file else None,
                           keyfile=str(cfg.key_file) if cfg.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.will_set(self.topics.status, self._status("offline"), qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _status(self, state: str) -> str:
        return DeviceStatus(device_id=self.device_id, state=state, at=datetime.now(UTC),
                            cache_version=self.cache_version() if state == "online" else None,
                            software_version=self.software_version).model_dump_json(exclude_none=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning(self.last_error)
            return
        self.last_error = None
        log.info("connected to %s:%s (MQTT %s)", self.cfg.host, self.cfg.port, self.cfg.version)
        client.publish(self.topics.status, self._status("online"), qos=1, retain=True)
        client.subscribe(self.topics.templates_notify, qos=1)
        self.connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        self.last_error = f"cannot connect to {self.cfg.host}:{self.cfg.port}"
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            log.warning("disconnected from broker: %s", reason_code)
        elif reason_code.is_failure and not (self.last_error or "").startswith("broker refused"):
            self.last_error = f"connection dropped before it was accepted: {reason_code}"
        self.connected.clear()
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.put((mid, reason_code))
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic != self.topics.templates_notify:
            return
        try:
            note = TemplatesChanged.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("ignored a malformed TemplatesChanged on %s: %s", msg.topic,
                        exc.errors()[0]["msg"] if exc.errors() else exc)
            return
        if self.on_templates_changed:
            self.on_templates_changed(note)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say 'offline' (retained) if connected, then disconnect. Unsent results stay in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        if self.connected.is_set():
            info = self.client.publish(self.topics.status, self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def notify(self) -> None:
        """A new result is in the outbox."""
        self._wake.set()

    def wait_drained(self, timeout: float) -> bool:
        """True once the outbox is empty (for tests and `edge verify` one-shots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.count() == 0:
                return True
            time.sleep(0.05)
        return self.outbox.count() == 0

    # -- the publisher thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._take_acks()
                if self.connected.is_set():
                    self._fill_window()
            except Exception as exc:  # a full disk or a locked store must not kill the link
                self.last_error = f"outbox: {exc}"
                log.exception("publisher loop error (will retry)")
                self._stop.wait(1.0)

    def _take_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid, rc = self._events.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # our status message, or a mid we stopped waiting for
            seq = entry[0]
            self._inflight_seqs.discard(seq)
            if rc.is_failure:
                self.last_error = f"broker rejected result seq {seq}: {rc}"
                log.warning(self.last_error)
                self._retry_at[seq] = time.monotonic() + FAILED_RETRY_S
            else:
                done.append(seq)
        if done:
            self.outbox.ack(done)
            self.acked_total += len(done)

    def _fill_window(self) -> None:
        now = time.monotonic()
        for mid, (seq, sent) in list(self._inflight.items()):
            if now - sent > self.cfg.resend_after_s:
                del self._inflight[mid]  # a late PUBACK for it is ignored; the new copy gets its own
                self._inflight_seqs.discard(seq)
        room = self.cfg.window - len(self._inflight)
        if room <= 0:
            return
        waiting = {s for s, t in self._retry_at.items() if t > now}
        self._retry_at = {s: t for s, t in self._retry_at.items() if t > now}
        for p in self.outbox.pending(room, exclude=self._inflight_seqs | waiting):
            info = self.client.publish(self.topics.results, p.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("publish failed for seq %s: %s", p.seq, mqtt.error_string(info.rc))
                break
            # NO_CONN: paho queued it and sends it after reconnecting, under the same mid
            self._inflight[info.mid] = (p.seq, now)
            self._inflight_seqs.add(p.seq)
