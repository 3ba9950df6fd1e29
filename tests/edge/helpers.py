"""Helpers for the station tests: a results subscriber, configs, feeds, synthetic fingers."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fpverify.edge.cache import new_key
from fpverify.edge.wire import TemplateAdd, TemplateFeed, VerificationResult


class Subscriber:
    """A QoS 1 subscriber to every device's results; collects result ids (duplicates counted too)."""

    def __init__(self, host: str, port: int, topic: str = "fpverify/v1/devices/+/results",
                 on_result=None, tls: dict | None = None, client_id: str | None = None) -> None:
        self.topic = topic
        self.ids: list[str] = []
        self.results: list[VerificationResult] = []
        self.bad: list[bytes] = []
        self.subscribed = threading.Event()
        self.lock = threading.Condition()
        self.on_result = on_result
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{os.getpid()}-{id(self)}", protocol=mqtt.MQTTv5)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1.0)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props):
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg):
        try:
            r = VerificationResult.model_validate_json(msg.payload)
        except ValueError:
            self.bad.append(msg.payload)
            return
        with self.lock:
            self.ids.append(str(r.result_id))
            self.results.append(r)
            self.lock.notify_all()
        if self.on_result:
            self.on_result(r, len(set(self.ids)))

    def wait_distinct(self, n: int, timeout: float = 60.0) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(set(self.ids)) >= n, timeout)

    def distinct(self) -> set[str]:
        with self.lock:
            return set(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_key(path: Path, key: bytes | None = None) -> bytes:
    key = key or new_key()
    path.write_text(key.hex() + "\n")
    os.chmod(path, 0o600)
    return key


def write_config(folder: Path, device_id: str = "desk-01", mqtt_port: int | None = None, extra: str = "",
                 registry_url: str | None = None, mqtt_extra: str = "", sensor_port: str = "/dev/null") -> Path:
    """A station config in `folder` (cache and key next to it). Returns the TOML path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "cache.key").exists():
        write_key(folder / "cache.key")
    mqtt_block = (f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nreconnect_min_s = 0.2\n'
                  f'reconnect_max_s = 1.0\n{mqtt_extra}\n') if mqtt_port else ""
    reg_block = ""
    if registry_url:
        (folder / "device.token").write_text("device-token-123\n")
        os.chmod(folder / "device.token", 0o600)
        reg_block = (f'[registry]\nurl = "{registry_url}"\ndevice_token = {{ file = "device.token" }}\n'
                     'sync_interval_s = 3600\n')
    text = f"""
[station]
device_id = "{device_id}"
site_id = "site-a"
purpose = "pharmacy"
min_quality = 20
{extra}

[sensor]
port = "{sensor_port}"
timeout_s = 1.0

[cache]
path = "station.db"
key = {{ file = "cache.key" }}

{mqtt_block}
{reg_block}
"""
    path = folder / "edge.toml"
    path.write_text(text)
    return path


def template_add(version: int, template_id: str, card: str, blob: bytes, role: str = "holder",
                 delegate_id: str | None = None, valid_until: datetime | None = None, finger: int = 1) -> TemplateAdd:
    return TemplateAdd(version=version, template_id=template_id, card_number=card, role=role,
                       delegate_id=delegate_id, valid_until=valid_until, finger=finger, quality=80, template=blob)


def feed(since: int, changes: list, version: int | None = None, more: bool = False) -> TemplateFeed:
    return TemplateFeed(since=since, version=version if version is not None else
                        max([since, *(c.version for c in changes)]), changes=changes, more=more)


def now() -> datetime:
    return datetime.now(UTC)


HOLDER, DELEGATE, STRANGER = 38, 36, 45  # synthetic finger seeds: strong self-agreement, far apart


def sensor_fingers() -> dict[int, list]:
    """Four impressions of each of the three synthetic fingers, cropped to the sensor like a capture."""
    from fpverify.edge.sensor.simulator import fit_to_sensor
    from fpverify.matcher import synth

    out = {}
    for seed in (HOLDER, DELEGATE, STRANGER):
        master = synth.generate_finger(seed)
        out[seed] = [fit_to_sensor(synth.impression(master, k)[0]) for k in range(4)]
    return out


def enrolled_feed(fingers: dict[int, list]) -> TemplateFeed:
    """CARD0042: the holder's finger 2 (three presses) and delegate son-01's finger 7; CARD0043 blocked."""
    from fpverify import matcher
    from fpverify.edge.cache import CardStatus

    changes = []
    for k in range(3):
        changes.append(template_add(len(changes) + 1, f"h{k}", "CARD0042", matcher.extract(fingers[HOLDER][k]).to_bytes(),
                                    finger=2))
    for k in range(3):
        changes.append(template_add(len(changes) + 1, f"d{k}", "CARD0042",
                                    matcher.extract(fingers[DELEGATE][k]).to_bytes(), role="delegate",
                                    delegate_id="son-01", valid_until=now() + timedelta(days=30), finger=7))
    changes.append(template_add(len(changes) + 1, "x0", "CARD0043", matcher.extract(fingers[STRANGER][0]).to_bytes()))
    changes.append(CardStatus(version=len(changes) + 1, card_number="CARD0043", status="blocked"))
    return feed(0, changes)
