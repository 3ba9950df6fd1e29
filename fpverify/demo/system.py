"""The demo's system put together: a broker, the registry, three stations, the people registered
through the registry's API (holders, consents, a delegate, inpatients) and enrolled at the
registration desk; then the day (scenario.Day) or single visits (tests)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fpverify.demo.cast import Person, make_cast
from fpverify.demo.scenario import Day
from fpverify.demo.services import Api, DemoRegistry
from fpverify.demo.stations import SITES, STATIONS, DemoStation, EnrollmentReader
from fpverify.demo.summary import registry_count
from fpverify.services import start_broker


class Demo:
    def __init__(self, workdir: Path, holders: int = 20, broker: str = "auto", database_url: str | None = None,
                 external_broker: tuple[int, str] | None = None, port: int | None = None, seed: int = 0,
                 say: Callable[[str], None] | None = None, started_at: float | None = None,
                 registry_settings: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.broker_kind = broker
        self.database_url = database_url
        self.external_broker = external_broker  # (port, MQTT version) of a broker started elsewhere
        self.port = port
        self.registry_settings = registry_settings or {}  # more registry Settings (tests)
        self.cast = make_cast(holders, seed)
        self.say = say or (lambda text: None)
        self.broker = None
        self.mqtt_version: str | None = None
        self.registry: DemoRegistry | None = None
        self.enroller_api: Api | None = None
        self.stations: dict[str, DemoStation] = {}
        self.day = Day(self, seed)
        self.enrolled: set[str] = set()  # cards (and delegate ids) whose enrollment went through
        self.enroll_failed: list[str] = []
        self.held_for_review: list[str] = []
        self.enrollment_done = threading.Event()
        self.started_at = started_at or time.monotonic()
        self.first_verification_s: float | None = None
        self.local_outcomes: Counter = Counter()
        self.notes: list[str] = []
        self.stopping = threading.Event()
        self._enrollment: threading.Thread | None = None

    # -- setup ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.external_broker:
            broker_port, self.mqtt_version = self.external_broker
            broker_name = f"external broker on port {broker_port}"
        else:
            self.broker = start_broker(self.broker_kind, self.workdir)
            broker_port, self.mqtt_version, broker_name = self.broker.port, self.broker.version, self.broker.name
        self.say(f"broker: {broker_name} on 127.0.0.1:{broker_port}")
        self.registry = DemoRegistry(self.workdir, broker_port, self.mqtt_version, self.database_url,
                                     self.port, **self.registry_settings).start()
        self.registry.create_users()
        self.say(f"registry: {self.registry.url} ({'SQLite' if not self.database_url else 'database given'})")
        tokens = self._register_stations()
        self.enroller_api = Api(self.registry.url, "enroller")
        self._register_people()
        for key in STATIONS:
            self.stations[key] = DemoStation(key, self.workdir, self.registry.url, tokens[key], broker_port,
                                             self.mqtt_version, on_outcome=self._on_outcome)
            self.stations[key].start()
        self.day.start()
        self.say("stations: " + ", ".join(f"{s.title} [{s.device_id} @ {s.site_id}]" for s in self.stations.values()))

    def _register_stations(self) -> dict[str, str]:
        """Sites and devices by the sysadmin; each device's feed token is a special operation that a
        supervisor approves and receives, once, to install on the station (双人复核)."""
        admin, supervisor = Api(self.registry.url, "admin"), Api(self.registry.url, "supervisor")
        tokens = {}
        try:
            for site, name in SITES.items():
                admin.post("/sites", {"id": site, "name": name})
            for key, (dev, site, _purpose, title) in STATIONS.items():
                approval = admin.post("/devices", {"device_id": dev, "site_id": site, "name": title,
                                                   "reason": "demo station"})["approval"]
                decided = supervisor.post(f"/approvals/{approval['id']}/approve",
                                          {"comment": "demo: installed on the station"})
                if not decided.get("device_token"):
                    raise RuntimeError(f"the registry gave no feed token for {dev}: approval {decided['status']}")
                tokens[key] = decided["device_token"]
        finally:
            admin.close()
            supervisor.close()
        return tokens

    def _register_people(self) -> None:
        """Holders, their biometric consent, a delegate and the inpatients, through the API."""
        api = self.enroller_api
        now = datetime.now(UTC)
        for p in self.cast.card_holders():
            api.post("/cardholders", {"card_number": p.card, "name": p.name, "national_id": p.national_id})
        for p in self.cast.holders:
            api.post(f"/cardholders/{p.card}/consents", {"given_at": (now - timedelta(minutes=5)).isoformat(),
                                                         "scope": "fingerprint identity checks (demo)",
                                                         "witnessed_by": "enroller"})
        holder, d = self.cast.holders[2], self.cast.delegate
        body = {"name": d.name, "national_id": d.national_id, "relation": "son 儿子",
                "valid_from": (now - timedelta(days=1)).isoformat(), "valid_until": (now + timedelta(days=180)).isoformat()}
        d.delegate_id = api.post(f"/cardholders/{holder.card}/delegates", body)["id"]
        d.card = holder.card
        for i, p in enumerate(self.cast.inpatients()):
            api.post("/stays", {"card_number": p.card, "site_id": "city-hospital", "ward": "3",
                                "bed": f"{12 + i}", "admitted_at": (now - timedelta(hours=30)).isoformat(),
                                "recheck_interval_hours": 24})

    def enroll_all(self, people: list[Person] | None = None) -> None:
        """At the registration desk's enrollment reader, one person after another."""
        reader = EnrollmentReader(self.stations["desk"])
        try:
            for p in people or self.cast.enrollment_order():
                if self.stopping.is_set():
                    break
                status = reader.enroll(p)
                if status == "enrolled":
                    self.enrolled.add(p.delegate_id or p.card)
                elif status == "held":
                    self.held_for_review.append(p.card)
                else:
                    self.enroll_failed.append(p.card)
        finally:
            self.enrollment_done.set()
            reader.close()

    def start_enrollment(self) -> threading.Thread:
        self._enrollment = threading.Thread(target=self.enroll_all, name="enrollment", daemon=True)
        self._enrollment.start()
        return self._enrollment

    def admit_note(self) -> str:
        missing = self.cast.inpatients()[-1]
        return f"inpatient {missing.card} ({missing.name}) will be missing at the bedside rounds"

    # -- the day ----------------------------------------------------------------------------------------
    def _on_outcome(self, result, message: str) -> None:
        if self.first_verification_s is None:
            self.first_verification_s = time.monotonic() - self.started_at
        self.local_outcomes[result.outcome.value] += 1

    def play(self, duration: float | None, pace: float = 2.0) -> None:
        self.day.play(duration, pace)

    def visit(self, key: str, person: Person, card: str | None = None, poor: bool = False):
        """One synchronous verification (tests): `person` presses at station `key` with `card`."""
        images = person.poor_presses() if poor else person.presses()
        return self.stations[key].visit(card or person.card, images)

    # -- the end ----------------------------------------------------------------------------------------
    def drain(self, timeout: float = 45.0) -> bool:
        """Wait for every queued visit to finish and every result to reach the registry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.day.idle():
            time.sleep(0.2)
        for st in self.stations.values():  # the visit in hand
            with st.lock:
                pass
        while time.monotonic() < deadline:
            counts = [st.outbox_counts() for st in self.stations.values()]
            recorded = sum(c[0] for c in counts)
            if all(c[1] == 0 for c in counts) and registry_count(self.registry) >= recorded:
                return True
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        self.stopping.set()
        if self._enrollment is not None:
            self._enrollment.join(30)  # finishes the person in hand, then stops
        self.day.join()
        for st in self.stations.values():
            st.stop()
        if self.enroller_api is not None:
            self.enroller_api.close()
        if self.registry:
            self.registry.stop()
        if self.broker:
            self.broker.stop()
