"""The MQTT link against a real Mosquitto: outbox draining, PUBACK-only deletion, offline-first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fpverify.edge.cache import CardStatus, Store
from fpverify.edge.config import load_config
from fpverify.edge.mqtt_link import MqttLink
from fpverify.edge.outbox import Outbox
from fpverify.edge.wire import Outcome, TemplatesChanged
from fpverify.edge.workflow import Verifier
from tests.edge.helpers import Subscriber, feed, template_add, write_config


def open_station_parts(cfg):
    from fpverify.edge.cache import parse_key

    store = Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes()))
    outbox = Outbox(store)
    # No matcher needed: cards here are either not enrolled or blocked (decided before capture).
    store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked"),
                              template_add(2, "t1", "ENROLLED1", b"x" * 64)]))
    return store, outbox, Verifier(cfg.station, store, outbox, engine=None)


def wait_for(pred, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def passwd(path, *users: tuple[str, str]) -> None:
    path.unlink(missing_ok=True)
    path.touch()
    for user, pw in users:
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, pw], check=True, capture_output=True)


def test_results_reach_the_broker_and_leave_the_outbox(tmp_path, mosquitto):
    cfg = load_config(write_config(tmp_path / "st", mqtt_port=mosquitto.port))
    store, outbox, verifier = open_station_parts(cfg)
    status_msgs: list[dict] = []
    sub = Subscriber(mosquitto.host, mosquitto.port)
    status = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    status.on_message = lambda c, u, m: status_msgs.append(json.loads(m.payload) | {"retain": m.retain})
    status.connect(mosquitto.host, mosquitto.port)
    status.subscribe("fpverify/v1/devices/+/status", qos=1)
    status.loop_start()
    assert sub.subscribed.wait(10)
    link = MqttLink(cfg.mqtt, "desk-01", outbox, cache_version=store.feed_version)
    verifier.on_recorded = lambda r: link.notify()
    link.start()
    try:
        assert link.connected.wait(15)
        outcomes = [verifier.verify(c).outcome for c in ("BLOCKED1", "NOBODY99", "BLOCKED1")]
        assert outcomes == [Outcome.CARD_BLOCKED, Outcome.NOT_ENROLLED, Outcome.CARD_BLOCKED]
        assert sub.wait_distinct(3, 30)
        assert wait_for(lambda: outbox.count() == 0)
        assert sub.distinct() == set(outbox.history_ids())
        assert store.query("SELECT count(*) FROM outbox_history WHERE acked_at IS NULL") == [(0,)]
        assert wait_for(lambda: any(m["state"] == "online" for m in status_msgs), 10)
        online = [m for m in status_msgs if m["state"] == "online"][0]
        assert online["device_id"] == "desk-01" and online["cache_version"] == 2
    finally:
        link.stop()
        sub.close()
    # graceful stop says offline, retained
    assert wait_for(lambda: status_msgs and status_msgs[-1]["state"] == "offline", 10)
    status.loop_stop()
    store.close()


@pytest.mark.slow
def test_100_results_with_the_broker_stopped_then_started(tmp_path, mosquitto_factory):
    """Offline-first: the broker goes away, 100 desk checks happen, it comes back: exactly 100 arrive.

    The subscriber must be subscribed before the station may publish again, or results published in
    between would be lost to it (not to the broker). A password file decides that without racing:
    the restarted broker refuses the station until the test has subscribed and reloads (SIGHUP).
    """
    pw = tmp_path / "passwd"
    passwd(pw, ("desk-01", "s3cret"))
    # as root mosquitto drops to its own user, which cannot read pytest's private tmp dir
    broker = mosquitto_factory(conf=f"password_file {pw}\n" + ("user root\n" if os.geteuid() == 0 else ""))
    folder = tmp_path / "st"
    write_config(folder, mqtt_port=broker.port, mqtt_extra='username = "desk-01"\npassword = { file = "mqtt.pw" }\n')
    (folder / "mqtt.pw").write_text("s3cret\n")
    (folder / "mqtt.pw").chmod(0o600)
    cfg = load_config(folder / "edge.toml")
    store, outbox, verifier = open_station_parts(cfg)
    link = MqttLink(cfg.mqtt, "desk-01", outbox, password="s3cret")
    verifier.on_recorded = lambda r: link.notify()
    link.start()
    sub = None
    try:
        assert link.connected.wait(15)
        broker.stop()
        assert wait_for(lambda: not link.connected.is_set(), 15)
        passwd(pw, ("someone-else", "x"))  # the restarted broker will refuse the station for now
        cards = ["BLOCKED1", "NOBODY99"] * 50
        results = [verifier.verify(c) for c in cards]
        assert outbox.count() == 100
        broker.start()
        sub = Subscriber(broker.host, broker.port)
        assert sub.subscribed.wait(15)
        assert wait_for(lambda: link.last_error is not None and "refused" in link.last_error, 15)
        assert outbox.count() == 100  # refused: nothing was sent, nothing was dropped
        passwd(pw, ("desk-01", "s3cret"))
        broker.proc.send_signal(signal.SIGHUP)  # reload the password file: the station gets in
        assert sub.wait_distinct(100, 60), f"only {len(sub.distinct())} of 100 arrived"
        assert wait_for(lambda: outbox.count() == 0, 30)
        time.sleep(0.5)  # let any duplicate in flight land before counting
        assert sub.distinct() == {str(r.result_id) for r in results} == set(outbox.history_ids())
        assert len(sub.distinct()) == 100
        assert not sub.bad
    finally:
        link.stop()
        if sub:
            sub.close()
        store.close()


def test_templates_changed_reaches_the_callback_and_garbage_is_ignored(tmp_path, mosquitto):
    cfg = load_config(write_config(tmp_path / "st", mqtt_port=mosquitto.port))
    store, outbox, _ = open_station_parts(cfg)
    seen: list[int] = []
    got = threading.Event()
    link = MqttLink(cfg.mqtt, "desk-01", outbox,
                    on_templates_changed=lambda n: (seen.append(n.version), got.set()))
    link.start()
    try:
        assert link.connected.wait(15)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect(mosquitto.host, mosquitto.port)
        pub.loop_start()
        topic = "fpverify/v1/devices/desk-01/templates"
        pub.publish(topic, b'{"kind": "templates_changed", "version": "lots"}', qos=1).wait_for_publish(10)
        pub.publish(topic, b"\xff\x00 not json", qos=1).wait_for_publish(10)
        pub.publish(topic, TemplatesChanged(version=7).model_dump_json(), qos=1, retain=True).wait_for_publish(10)
        assert got.wait(15)
        assert seen == [7]
        pub.loop_stop()
    finally:
        link.stop()
        store.close()


@pytest.mark.parametrize("version", ["3.1.1"])
def test_mqtt_311_is_supported(tmp_path, mosquitto, version):
    cfg = load_config(write_config(tmp_path / "st", mqtt_port=mosquitto.port, mqtt_extra=f'version = "{version}"'))
    store, outbox, verifier = open_station_parts(cfg)
    sub = Subscriber(mosquitto.host, mosquitto.port)
    assert sub.subscribed.wait(10)
    link = MqttLink(cfg.mqtt, "desk-01", outbox)
    verifier.on_recorded = lambda r: link.notify()
    link.start()
    try:
        r = verifier.verify("BLOCKED1")
        assert sub.wait_distinct(1, 30) and sub.distinct() == {str(r.result_id)}
        assert wait_for(lambda: outbox.count() == 0)
    finally:
        link.stop()
        sub.close()
        store.close()
