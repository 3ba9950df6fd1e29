"""Plain helpers of the trust tests (fixtures are in conftest.py): the test PKI, the shipped broker
config with only ports and paths rewritten, and a paho MQTT 5 client with a certificate."""

from __future__ import annotations

import os
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fpverify.server.trust.pki import CertificateAuthority, write_identity

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "firmware_cfg" / "mosquitto"
SITE = "hosp-a"


@dataclass
class Pki:
    dir: Path
    ca: CertificateAuthority
    files: Path  # identities: <cn>.crt / <cn>.key

    def crt(self, cn: str) -> Path:
        return self.files / f"{cn}.crt"

    def key(self, cn: str) -> Path:
        return self.files / f"{cn}.key"

    def device(self, device_id: str, site: str = SITE):
        key, cert = self.ca.issue_device(device_id, site)
        write_identity(self.files, device_id, key, cert)
        return key, cert


def shipped_conf(pki: Pki, workdir: Path, persistence: bool = False) -> str:
    """firmware_cfg/mosquitto/mosquitto.conf with the listener on {port}/127.0.0.1 and the paths
    pointed at the test PKI. Nothing else changes: the same TLS, identity, CRL and ACL settings."""
    text = (SHIPPED / "mosquitto.conf").read_text()
    paths = {"ca.pem": pki.ca.cert_path, "broker.crt": pki.crt("broker"), "broker.key": pki.key("broker"),
             "crl.pem": pki.ca.crl_path, "acl": SHIPPED / "acl"}
    for name, path in paths.items():
        text = text.replace(f"/etc/mosquitto/fpverify/{name}", str(path))
    text = re.sub(r"^listener 8883$", "listener {port} 127.0.0.1", text, flags=re.M)
    text = text.replace("persistence_location /var/lib/mosquitto/", f"persistence_location {workdir}/")
    text = re.sub(r"^log_dest .*$", "", text, flags=re.M)  # the fixture logs to a file
    assert "{port}" in text and "/etc/mosquitto/fpverify" not in text, "the shipped config changed shape"
    if os.geteuid() == 0:
        text += "\nuser root\n"  # else mosquitto drops to 'mosquitto', which cannot read tmp files
    return text


@dataclass
class Client:
    """A paho MQTT 5 client with a certificate; records what happens to it."""

    client: mqtt.Client
    connack: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    pubacks: dict = field(default_factory=dict)  # mid -> reason code
    subacks: dict = field(default_factory=dict)
    disconnects: list = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, pred, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid

    def subscribe(self, topic: str, qos: int = 1):
        rc, mid = self.client.subscribe(topic, qos=qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self.wait(lambda: mid in self.subacks), "no SUBACK"
        return self.subacks[mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(host: str, port: int, cert: Path | None, key: Path | None, ca: Path, client_id: str,
            wait: bool = True, version=mqtt.MQTTv5) -> Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                    reconnect_on_failure=False)
    c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None,
              cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    box = Client(c)

    def note(fn):
        def inner(*a):
            with box.cond:
                fn(*a)
                box.cond.notify_all()
        return inner

    c.on_connect = note(lambda cl, u, flags, rc, props: box.connack.append(rc))
    c.on_message = note(lambda cl, u, msg: box.messages.append((msg.topic, bytes(msg.payload))))
    c.on_publish = note(lambda cl, u, mid, rc, props: box.pubacks.__setitem__(mid, rc))
    c.on_subscribe = note(lambda cl, u, mid, rcs, props: box.subacks.__setitem__(mid, rcs))
    c.on_disconnect = note(lambda cl, u, flags, rc, props: box.disconnects.append(rc))
    c.on_connect_fail = note(lambda cl, u: box.disconnects.append("connect_fail"))
    try:
        c.connect(host, port, keepalive=30)
    except (ssl.SSLError, OSError) as exc:
        box.disconnects.append(exc)
        return box
    c.loop_start()
    if wait:
        box.wait(lambda: box.connack or box.disconnects)
    return box
