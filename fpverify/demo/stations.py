"""The demo's stations: real edge.station.Station objects (the real pyfingerprint driver on a
simulated sensor's pty), each reached through a NetCut relay, and the registration desk's
enrollment reader. The hand of whoever stands at the desk follows the station's prompts by their
step (edge.prompts), never by their wording.

Each station serves its kiosk page ([kiosk] enabled, a free port on 127.0.0.1) as a real desk does:
cards go to the station's Desk (edge.kiosk.desk, the queue the page's reader and the HIS share), so
whoever opens the page sees the desk's live screen, in Chinese first (?lang=en for English)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fpverify.demo.cast import ENROLL_PRESSES, ENROLLED_FINGER, PASSWORDS, Person
from fpverify.demo.services import NetCut
from fpverify.demo.settings import station_config
from fpverify.edge.prompts import Prompt, Step

log = logging.getLogger("fpverify.demo")
SITES = {"city-hospital": "City Hospital 市第一医院", "riverside-pharmacy": "Riverside Pharmacy 滨江定点药店"}
STATIONS = {  # key: (device id, site, purpose, name)
    "desk": ("city-reg-1", "city-hospital", "registration", "Registration desk 1 挂号处"),
    "pharmacy": ("rsp-counter-1", "riverside-pharmacy", "pharmacy", "Pharmacy counter 药店柜台"),
    "ward": ("city-ward-3", "city-hospital", "bedside", "Ward 3 bedside tablet 病房"),
}


class Hand:
    """A station's Display, and the hand at its sensor: at each prompt to place the finger the next
    image of the current visit goes onto the simulated sensor (none left: nothing is placed); at
    each prompt to lift, and at the outcome, the finger comes off."""

    def __init__(self, sim, on_outcome: Callable[[Any, str], None] | None = None) -> None:
        self.sim = sim
        self.images: Iterator | None = None
        self.on_outcome = on_outcome

    def show(self, prompt: Prompt) -> None:
        if prompt.step is Step.PLACE_FINGER:
            image = next(self.images, None) if self.images is not None else None
            if image is None:
                self.sim.lift_finger()
            else:
                self.sim.place_finger(image)
        elif prompt.step is Step.LIFT_FINGER:
            self.sim.lift_finger()

    def outcome(self, result, message: str) -> None:
        self.sim.lift_finger()
        if self.on_outcome:
            self.on_outcome(result, message)


class DemoStation:
    """A real Station (real driver on a simulated sensor's pty) reached through a NetCut relay."""

    def __init__(self, key: str, workdir: Path, registry_url: str, token: str, broker_port: int, mqtt_version: str,
                 on_outcome: Callable[[Any, str], None] | None = None) -> None:
        from fpverify.edge.cache import new_key
        from fpverify.edge.kiosk.display import KioskDisplay
        from fpverify.edge.prompts import Displays
        from fpverify.edge.sensor.simulator import SimulatedSensor
        from fpverify.edge.station import Station
        from fpverify.edge.workflow import Engine

        self.key = key
        self.device_id, self.site_id, self.purpose, self.title = STATIONS[key]
        folder = workdir / f"station-{self.device_id}"
        folder.mkdir(parents=True, exist_ok=True)
        _secret(folder / "cache.key", new_key().hex())
        _secret(folder / "device.token", token)
        self.sim = SimulatedSensor()
        port = self.sim.start()
        self.relay = NetCut(broker_port).start()
        self.cfg = station_config(self.device_id, self.site_id, self.purpose, folder, port, registry_url,
                                  self.relay.port, mqtt_version)
        self.hand = Hand(self.sim, on_outcome)
        # The page's display first: the screen asks, then the hand acts (as at a real desk).
        self.screen = KioskDisplay(hold_s=self.cfg.kiosk.outcome_hold_s)
        self.station = Station(self.cfg, display=Displays(self.screen, self.hand),
                               engine=Engine.for_station(self.cfg.station))
        self.kiosk: Any = None  # edge.kiosk.server.KioskService, once started
        self.last_result: Any = None  # the last verification this desk decided (tests read it)
        self.last_job: Any = None  # ... and the desk's job (edge.kiosk.desk.Job) that ran it
        self.lock = threading.Lock()  # one patient at the desk at a time

    def start(self) -> None:
        from fpverify.edge.kiosk.server import KioskService

        self.station.start()
        if self.cfg.kiosk.enabled:
            self.kiosk = KioskService(self.station, self.screen).start()

    @property
    def kiosk_url(self) -> str | None:
        """The desk's screen (Chinese; add ?lang=en for English), while the demo runs."""
        return self.kiosk.url if self.kiosk is not None else None

    def has_templates(self, card: str, delegate_id: str | None = None) -> bool:
        found = self.station.store.templates_for(card)
        return any(t.delegate_id == delegate_id for t in found) if delegate_id else bool(found)

    def wait_templates(self, card: str, timeout: float, delegate_id: str | None = None,
                       give_up: Callable[[], bool] = lambda: False,
                       ready: Callable[[], bool] | None = None) -> bool:
        """Until the station holds the card's templates (or `ready` says it will get them when the
        card is presented: fetched on demand)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not give_up():
            if self.has_templates(card, delegate_id) or (ready is not None and ready()):
                return True
            if self.station.sync:
                self.station.sync.sync_soon()  # the TemplatesChanged note may be on its way
            time.sleep(0.2)
        return False

    def visit(self, card: str, images: Iterator, operator: str | None = None, wait_s: float = 120.0):
        """One patient: the card line goes to the desk as its reader hands it over (parsed as the page
        does), the desk's worker runs the check, the hand presses `images`. The result, or None."""
        operator = operator or f"op-{self.key}"
        with self.lock:
            self.hand.images = images
            try:
                if self.kiosk is None:
                    result = self.station.handle_card(card, operator_id=operator)
                else:
                    result = self._at_desk(card, operator, wait_s)
                if result is not None:
                    self.last_result = result
                return result
            finally:
                self.hand.images = None
                self.sim.lift_finger()

    def _at_desk(self, card: str, operator: str, wait_s: float):
        from fpverify.edge.kiosk.cards import BadRead, parse_card
        from fpverify.edge.kiosk.desk import DeskBusy

        try:
            number = parse_card(card).card_number
        except BadRead as exc:  # what the page does with a bad read: "scan again", nothing recorded
            self.station.show(Prompt(Step.CARD_NOT_READ, reasons=(exc.reason,), detail=str(exc)))
            return None
        deadline = time.monotonic() + wait_s
        images = self.hand.images
        while True:
            try:
                job = self.last_job = self.kiosk.desk.submit(number, "reader", operator_id=operator)
                break
            except DeskBusy as busy:  # someone typed a card into the page: their turn first, without our finger
                self.hand.images = None
                left = deadline - time.monotonic()
                if left <= 0 or not busy.job.done.wait(left):
                    return None
                self.hand.images = images
        if not job.done.wait(max(0.0, deadline - time.monotonic())):
            self.kiosk.desk.cancel(job.id)
            job.done.wait(5)
        return job.result

    def outbox_counts(self) -> tuple[int, int]:
        """(results recorded, still waiting for the broker)."""
        ob = self.station.outbox
        return len(ob.history_ids()), ob.count()

    def stop(self) -> None:
        if self.kiosk is not None:  # the page and the desk's worker first: they use the station's store
            with contextlib.suppress(Exception):
                self.kiosk.stop()
        with contextlib.suppress(Exception):
            self.station.stop()
        self.relay.stop()
        self.sim.stop()


class EnrollmentReader:
    """The registration desk's enrollment reader: its own simulated sensor and driver, the desk's
    settings, the enroller's login (edge.enroll.Enroller, through the registry's API)."""

    def __init__(self, desk: DemoStation) -> None:
        from fpverify.edge.enroll import Enroller
        from fpverify.edge.sensor.driver import SensorDriver
        from fpverify.edge.sensor.simulator import SimulatedSensor
        from fpverify.edge.workflow import Engine

        self.sim = SimulatedSensor()
        self.driver = SensorDriver(self.sim.start(), timeout_s=2.0)
        self.driver.open()
        self.hand = Hand(self.sim)
        self.enroller = Enroller(desk.cfg, Engine.for_station(desk.cfg.station), self.driver, display=self.hand)
        self.enroller.login("enroller", PASSWORDS["enroller"])

    def enroll(self, person: Person, attempts: int = 2) -> str:
        """"enrolled", "held" (a 1:N hit on another holder: two supervisors must review) or "failed"."""
        from fpverify.edge.enroll import EnrollError

        for attempt in range(attempts):
            self.hand.images = (person.press(k) for k in itertools.count(attempt * ENROLL_PRESSES))
            try:
                answer = self.enroller.enroll(person.card, [ENROLLED_FINGER], impressions=ENROLL_PRESSES,
                                              delegate_id=person.delegate_id)
            except EnrollError as exc:
                log.warning("enrollment of %s failed (%s)", person.card, exc)
                continue
            return "enrolled" if answer.get("status") == "enrolled" else "held"
        return "failed"

    def close(self) -> None:
        self.enroller.close()
        self.driver.close()
        self.sim.stop()


def _secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
