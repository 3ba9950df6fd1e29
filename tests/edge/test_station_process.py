"""The station as a real process: SIGKILL in the middle of publishing loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fpverify.edge.cache import CardStatus, Store, parse_key
from fpverify.edge.config import load_config
from fpverify.edge.outbox import Outbox
from fpverify.edge.workflow import Verifier
from tests.edge.helpers import Subscriber, feed, write_config
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # SIGKILL of a real station process mid-publish (fault injection)

TOTAL = 2000
KILL_AFTER = 200


def start_station(cfg_path, log_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fpverify", "edge", "run", "--config", str(cfg_path)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=open(log_path, "ab"),
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_sigkill_mid_publish_then_restart_loses_nothing(tmp_path, mosquitto):
    folder = tmp_path / "st"
    cfg_path = write_config(folder, mqtt_port=mosquitto.port, mqtt_extra="window = 10")
    cfg = load_config(cfg_path)
    # Queue TOTAL results through the real workflow while no station process runs (offline desk).
    with Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())) as store:
        store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
        outbox = Outbox(store)
        verifier = Verifier(cfg.station, store, outbox, engine=None)
        for i in range(TOTAL):
            verifier.verify("BLOCKED1" if i % 2 else f"NOBODY{i:04d}")
        assert outbox.count() == TOTAL

    statuses: list[dict] = []
    status = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    status.on_message = lambda c, u, m: statuses.append(json.loads(m.payload))
    status.connect(mosquitto.host, mosquitto.port)
    status.subscribe("fpverify/v1/devices/desk-01/status", qos=1)
    status.loop_start()

    proc: list[subprocess.Popen] = []
    killed = threading.Event()

    def on_result(result, distinct: int) -> None:
        if distinct >= KILL_AFTER and not killed.is_set():
            os.kill(proc[0].pid, signal.SIGKILL)  # mid-stream: most results are still unsent
            killed.set()

    sub = Subscriber(mosquitto.host, mosquitto.port, on_result=on_result)
    assert sub.subscribed.wait(10)
    log_path = tmp_path / "station.log"
    try:
        proc.append(start_station(cfg_path, log_path))
        assert killed.wait(120), f"station published nothing: {log_path.read_text()[-3000:]}"
        assert proc[0].wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 15  # the broker sends the last will when the socket drops
        while time.monotonic() < deadline and not (statuses and statuses[-1]["state"] == "offline"):
            time.sleep(0.05)
        assert statuses and statuses[-1]["state"] == "offline", statuses[-3:]

        with Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())) as store:
            pending = Outbox(store).count()
        received = len(sub.distinct())
        assert 0 < pending < TOTAL, "the kill must land while results are still queued"
        assert received + pending >= TOTAL  # everything is either at the subscriber or still queued

        proc.append(start_station(cfg_path, log_path))
        proc[0] = proc[1]
        assert sub.wait_distinct(TOTAL, 180), f"{len(sub.distinct())}/{TOTAL}: {log_path.read_text()[-3000:]}"
        deadline = time.monotonic() + 30
        with Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())) as store:
            ob = Outbox(store)
            while time.monotonic() < deadline and ob.count():
                time.sleep(0.1)
            assert ob.count() == 0
            history = ob.history_ids()
        proc[1].send_signal(signal.SIGTERM)
        assert proc[1].wait(30) == 0
        assert len(history) == TOTAL
        assert sub.distinct() == set(history)
        assert not sub.bad
        assert statuses[-1]["state"] == "offline"  # graceful stop says so too
    finally:
        for p in proc:
            if p.poll() is None:
                p.kill()
                p.wait()
        sub.close()
        status.loop_stop()
