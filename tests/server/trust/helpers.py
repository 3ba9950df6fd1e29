"""Helpers for the trust tests: results, a signing outbox (the integration the lead applies to
edge/outbox.py), a station built from a provisioned bundle."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from fpverify.edge.cache import Store, parse_key
from fpverify.edge.config import load_config
from fpverify.edge.mqtt_link import MqttLink
from fpverify.edge.outbox import Outbox, new_result_id
from fpverify.edge.signing import ResultSigner
from fpverify.edge.wire import VerificationResult
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from fpverify.server.models import Alert, DeadLetter, VerificationRecord
from fpverify.server.ops.provision import provision_device
from tests.server.helpers import make_settings


def result(device_id: str = "desk-a", site_id: str = "hosp-a", outcome: str = "no_match", **kw) -> VerificationResult:
    data = dict(result_id=new_result_id(), device_id=device_id, site_id=site_id, card_number="CARD-0001",
                outcome=outcome, purpose="registration", captured_at=datetime.now(UTC), score=0.125,
                threshold=0.1788, attempts=1, quality=77)
    data.update(kw)
    return VerificationResult(**data)


class SigningOutbox(Outbox):
    """The station's signing outbox, remembering every result as queued (counter and signature set)."""

    def __init__(self, store: Store, signer: ResultSigner) -> None:
        super().__init__(store, signer=signer)
        self.signed: list[VerificationResult] = []

    def add(self, result: VerificationResult) -> int:
        seq = super().add(result)
        self.signed.append(self.last_recorded)
        return seq


def wait_until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s: {what}")


class Station:
    """A provisioned station: bundle -> config -> encrypted store -> signing outbox -> MQTT link."""

    def __init__(self, pki, broker, tmp_path, device_id: str, site: str = "hosp-a", host: str | None = None,
                 mqtt_extra: str = "", cache_dir=None):
        b = provision_device(pki.dir, site, device_id, tmp_path / "bundles", None, host or broker.host, broker.port,
                             cache_path=str((cache_dir or tmp_path) / f"{device_id}.db"), replace=True)
        if mqtt_extra:  # [mqtt] is the last table of the generated file
            b.config_path.write_text(b.config_path.read_text() + mqtt_extra + "\n")
        self.bundle = b
        self.cfg = load_config(b.config_path)
        self.store = Store.open(self.cfg.cache.path, parse_key(self.cfg.cache.key.read_bytes()))
        signer = ResultSigner.from_files(self.cfg.mqtt.key_file, device_id, self.cfg.mqtt.cert_file)
        self.outbox = SigningOutbox(self.store, signer)
        self.link = MqttLink(self.cfg.mqtt, device_id, self.outbox)
        self.device_id = device_id

    def record(self, n: int) -> list[VerificationResult]:
        for _ in range(n):
            self.outbox.add(result(device_id=self.device_id))
            self.link.notify()
        return self.outbox.signed[-n:]

    def close(self):
        self.link.stop()
        self.store.close()


def registry_db(url: str, broker, pki, devices=("desk-a", "desk-b")) -> Database:
    settings = make_settings(url, mqtt_port=broker.port, mqtt_version="5", mqtt_tls_ca=pki.ca.cert_path,
                             mqtt_tls_cert=pki.crt("registry"), mqtt_tls_key=pki.key("registry"))
    db = Database(settings=settings)
    db.migrate()
    with db.session() as s:
        for d in devices:
            devices_crud.create_device(s, "test", "hosp-a", d, create_site_if_missing=True)
        s.commit()
    return db


def counts(db):
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(VerificationRecord)),
                s.scalar(select(func.count()).select_from(DeadLetter)),
                sorted(s.scalars(select(Alert.kind))))
