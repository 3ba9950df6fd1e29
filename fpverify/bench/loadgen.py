"""Simulated stations for the ingest test and bench: valid results (with duplicates, like a station
re-sending after a lost PUBACK), malformed payloads, published with QoS 1 over several clients."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fpverify.edge import wire
from fpverify.edge.outbox import new_result_id


@dataclass
class Load:
    messages: list[tuple[str, bytes]]  # (topic, payload) in publish order
    valid_ids: set[uuid.UUID] = field(default_factory=set)
    no_match_ids: set[uuid.UUID] = field(default_factory=set)
    malformed: int = 0
    duplicates: int = 0


NO_SCORE = {wire.Outcome.NOT_ENROLLED, wire.Outcome.CARD_BLOCKED, wire.Outcome.POOR_QUALITY, wire.Outcome.SENSOR_ERROR}


def _threshold() -> float:
    from fpverify.matcher import THRESHOLDS  # late: the publisher processes import this module too

    return THRESHOLDS["fmr_1e-4"]


def _result(rng: random.Random, device: str, site: str, t0: datetime, i: int,
            threshold: float) -> wire.VerificationResult:
    """A result as a station makes one (edge/workflow.py): a UUIDv7 id; scores on the matcher's
    0..1 scale, above the threshold for a match, below it for a no_match, none where nothing
    was compared; the finger only for a match."""
    outcome = rng.choices(list(wire.Outcome), weights=[80, 4, 4, 2, 6, 2, 2])[0]
    matched = outcome in (wire.Outcome.MATCH, wire.Outcome.DELEGATE_MATCH)
    if outcome in NO_SCORE:
        score = None
    elif matched:  # genuine scores: mostly 0.2-0.5 (docs/matcher.md)
        score = round(threshold + (1 - threshold) * rng.betavariate(2, 6), 4)
    else:  # impostor scores sit well below the threshold
        score = round(threshold * rng.betavariate(2, 6), 4)
    return wire.VerificationResult(
        result_id=new_result_id(), device_id=device, site_id=site, card_number=f"C{rng.randrange(10**6):06d}",
        outcome=outcome, purpose=rng.choice(list(wire.Purpose)), captured_at=t0 + timedelta(milliseconds=i),
        score=score, threshold=None if score is None else threshold, finger=rng.randrange(1, 11) if matched else None,
        attempts=1, quality=rng.randrange(20, 100), operator_id="op-1",
        delegate_id="dlg-1" if outcome == wire.Outcome.DELEGATE_MATCH else None,
    )


def malformed_payload(rng: random.Random, k: int, device: str, site: str) -> tuple[str, bytes]:
    """The k-th kind of bad message; every one must be dead-lettered, none may crash the worker."""
    topic = wire.Topics(device).results
    good = json.loads(_result(rng, device, site, datetime.now(UTC), k, 0.18).model_dump_json())
    kind = k % 10
    if kind == 0:
        return topic, b"\xff\xfe not json at all"
    if kind == 1:
        return topic, b'{"kind": "verification_result", "result_id": '  # truncated JSON
    if kind == 2:
        good.pop("outcome")
        return topic, json.dumps(good).encode()
    if kind == 3:
        good["outcome"] = "probably_fine"
        return topic, json.dumps(good).encode()
    if kind == 4:
        good["captured_at"] = "2024-01-01T10:00:00"  # no time zone
        return topic, json.dumps(good).encode()
    if kind == 5:
        good["device_id"] = "someone-else"  # does not match the topic
        return topic, json.dumps(good).encode()
    if kind == 6:
        good["extra"] = "x" * 50_000  # unknown field, large payload
        return topic, json.dumps(good).encode()
    if kind == 7:
        good["score"] = 1.5  # off the matcher's 0..1 scale
        return topic, json.dumps(good).encode()
    if kind == 8:
        return topic, b""
    good["device_id"] = "unregistered-dev"  # consistent with its topic, but not a registered device
    return wire.Topics("unregistered-dev").results, json.dumps(good).encode()


def make_load(n_valid: int, devices: list[str], site: str, duplicates: int, malformed: int, seed: int = 1) -> Load:
    rng = random.Random(seed)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    load = Load(messages=[])
    threshold = _threshold()
    sent: list[tuple[str, bytes]] = []
    for i in range(n_valid):
        dev = devices[i % len(devices)]
        r = _result(rng, dev, site, t0, i, threshold)
        load.valid_ids.add(r.result_id)
        if r.outcome == wire.Outcome.NO_MATCH:
            load.no_match_ids.add(r.result_id)
        sent.append((wire.Topics(dev).results, r.model_dump_json().encode()))
    msgs = list(sent)
    for _ in range(duplicates):
        msgs.append(rng.choice(sent))
    for k in range(malformed):
        msgs.append(malformed_payload(rng, k, rng.choice(devices), site))
    rng.shuffle(msgs)
    load.messages = msgs
    load.malformed = malformed
    load.duplicates = duplicates
    return load


def publish(host: str, port: int, messages: list[tuple[str, bytes]], clients: int = 5, version: str = "5",
            timeout: float = 300.0, prefix: str = "loadgen") -> float:
    """Publish with QoS 1 over `clients` connections; returns once every PUBACK arrived (seconds taken)."""
    conns = []
    for c in range(clients):
        cl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{c}-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311)
        cl.max_inflight_messages_set(500)
        cl.max_queued_messages_set(0)
        cl.connect(host, port)
        cl.loop_start()
        conns.append(cl)
    infos: list[list] = [[] for _ in conns]
    start = time.monotonic()

    def run(idx: int) -> None:
        cl = conns[idx]
        for topic, payload in messages[idx::clients]:
            infos[idx].append(cl.publish(topic, payload, qos=1))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = start + timeout
    for group in infos:
        for info in group:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError("broker did not acknowledge every message in time")
    took = time.monotonic() - start
    for cl in conns:
        cl.disconnect()
        cl.loop_stop()
    return took


def publish_reliably(host: str, port: int, messages: list[tuple[str, bytes]], clients: int = 5,
                     version: str = "5", timeout: float = 300.0, prefix: str = "station", window: int = 200,
                     resend_after_s: float = 5.0, times_out: str | None = None) -> float:
    """Publish like a station's outbox (edge/outbox.py, edge/mqtt_link.py): every message stays
    pending until its PUBACK, at most `window` in flight a connection; after a disconnect (a broker
    restart) the client reconnects and republishes what was not acknowledged, and anything
    unacknowledged after `resend_after_s` goes again. Duplicates are the registry's to absorb.
    `times_out`: a JSON file of the wall time (time.time()) each message was first published, by
    index into `messages` (latency measurements). Returns the seconds until every PUBACK."""
    start = time.monotonic()
    first_sent: list[float | None] = [None] * len(messages)
    groups = [list(range(i, len(messages), clients)) for i in range(clients)]
    errors: list[BaseException] = []

    def run(idx: int) -> None:
        try:
            _drain(host, port, messages, groups[idx], f"{prefix}-{idx}-{uuid.uuid4().hex[:6]}", version,
                   window, resend_after_s, start + timeout, first_sent)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if times_out:
        Path(times_out).write_text(json.dumps(first_sent))
    return time.monotonic() - start


def _drain(host: str, port: int, messages: list[tuple[str, bytes]], todo: list[int], client_id: str,
           version: str, window: int, resend_after_s: float, deadline: float, first_sent: list) -> None:
    """One connection's outbox: indexes in `todo` until each is acknowledged."""
    lock = threading.Lock()
    due = deque(todo)  # to send now
    in_flight: dict[int, tuple[int, float]] = {}  # mid -> (index, monotonic time sent)
    done: set[int] = set()
    early: set[int] = set()
    connected = threading.Event()

    def on_connect(c, u, flags, rc, props):
        if not rc.is_failure:
            connected.set()

    def on_disconnect(c, u, flags, rc, props):
        connected.clear()
        with lock:  # what was in flight goes again after the reconnect
            due.extend(i for i, _t in in_flight.values() if i not in done)
            in_flight.clear()
            early.clear()

    def on_publish(c, u, mid, rc, props):
        with lock:
            sent = in_flight.pop(mid, None)
            if sent is not None:
                done.add(sent[0])
            else:  # acknowledged before the sending loop recorded its mid
                early.add(mid)

    cl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                     protocol=mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311)
    cl.max_inflight_messages_set(window)
    cl.max_queued_messages_set(0)
    cl.reconnect_delay_set(0.2, 2)
    cl.on_connect, cl.on_disconnect, cl.on_publish = on_connect, on_disconnect, on_publish
    cl.connect_async(host, port)
    cl.loop_start()
    last_scan = time.monotonic()
    try:
        while True:
            # paho calls on_publish holding its own lock: never publish while holding ours
            with lock:
                if len(done) == len(todo):
                    return
                now = time.monotonic()
                if now - last_scan > 1.0:  # unacknowledged for too long: send again
                    last_scan = now
                    for mid, (i, t) in list(in_flight.items()):
                        if now - t > resend_after_s:
                            del in_flight[mid]
                            due.append(i)
                batch = []
                while connected.is_set() and due and len(in_flight) + len(batch) < window:
                    i = due.popleft()
                    if i not in done:
                        batch.append(i)
            for k, i in enumerate(batch):
                topic, payload = messages[i]
                info = cl.publish(topic, payload, qos=1)
                with lock:
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        due.extend(batch[k:])  # connection went away: sent again after the reconnect
                        break
                    if info.mid in early:
                        early.discard(info.mid)
                        done.add(i)
                    else:
                        in_flight[info.mid] = (i, now)
                if first_sent[i] is None:
                    first_sent[i] = time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(todo) - len(done)} messages still unacknowledged after the timeout")
            time.sleep(0.001 if batch else 0.01)
    finally:
        cl.disconnect()
        cl.loop_stop()
