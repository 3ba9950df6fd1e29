"""The demo's day: a script of visits (honest patients, someone with another person's card, poor
presses, a proxy pickup, bedside rounds with one inpatient missing, the pharmacy's network cut),
then random traffic per station; each station works through its queue in a thread of its own."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fpverify.demo.cast import Person
from fpverify.demo.stations import STATIONS, DemoStation

if TYPE_CHECKING:
    from fpverify.demo.system import Demo

log = logging.getLogger("fpverify.demo")

NETWORK_CUT = "NETWORK CUT"


@dataclass
class Event:
    at: float  # seconds after the day started
    station: str
    label: str
    card: str
    images: Callable[[], Iterator]
    needs: str | None = None  # a card whose templates the station must have first
    needs_delegate: str | None = None  # ... and this delegate's


def _good(p: Person) -> Callable[[], Iterator]:
    return lambda: p.presses()


def _poor(p: Person) -> Callable[[], Iterator]:
    return lambda: p.poor_presses()


class Day:
    OFFLINE_S = 8.0  # how long the pharmacy's network stays cut

    def __init__(self, demo: Demo, seed: int = 0) -> None:
        self.demo = demo
        self.cast = demo.cast
        self.rng = random.Random(seed)
        self.queues: dict[str, queue.Queue] = {key: queue.Queue() for key in STATIONS}
        self._threads: list[threading.Thread] = []

    def script(self) -> list[Event]:
        """The scripted part of the day (offsets in seconds)."""
        h = self.cast.holders
        a, b, d_holder = h[0], h[1], h[2]
        imp, dele, une = self.cast.impostor, self.cast.delegate, self.cast.unenrolled
        p1, p2, p3, _missing = self.cast.inpatients()
        return [
            Event(0.0, "desk", "honest patient", a.card, _good(a), needs=a.card),
            Event(0.0, "ward", "bedside round", p1.card, _good(p1), needs=p1.card),
            Event(0.5, "pharmacy", "honest patient", b.card, _good(b), needs=b.card),
            Event(1.0, "ward", "bedside round", p2.card, _good(p2), needs=p2.card),
            Event(1.5, "pharmacy", "someone else with this card", a.card, _good(imp), needs=a.card),
            Event(2.0, "ward", "bedside round", p3.card, _good(p3), needs=p3.card),
            Event(2.5, "desk", "poor press", h[3].card, _poor(h[3]), needs=h[3].card),
            Event(3.0, "pharmacy", "proxy pickup (代取药)", d_holder.card, _good(dele), needs=d_holder.card,
                  needs_delegate=dele.delegate_id),
            Event(3.5, "desk", "poor press", h[4].card, _poor(h[4]), needs=h[4].card),
            Event(4.0, "desk", "not enrolled yet", une.card, _good(une)),
            Event(4.5, "desk", "poor press", h[5].card, _poor(h[5]), needs=h[5].card),
            Event(5.0, "pharmacy", NETWORK_CUT, "", lambda: iter(())),
            Event(5.5, "pharmacy", "honest patient (offline)", b.card, _good(b), needs=b.card),
            Event(6.5, "pharmacy", "honest patient (offline)", a.card, _good(a), needs=a.card),
            Event(7.0, "desk", "the same stranger again", a.card, _good(imp), needs=a.card),
            Event(7.5, "pharmacy", "proxy pickup (offline)", d_holder.card, _good(dele), needs=d_holder.card,
                  needs_delegate=dele.delegate_id),
        ]

    def random_event(self, station: str) -> Event | None:
        h = self.cast.holders
        if station == "ward":
            pool = self.cast.inpatients()[:3]
        elif station == "pharmacy":  # the pharmacy's regulars; the hospital's patients are others,
            pool = [h[1], h[2], *h[6:11]]  # so a card at both sites within minutes stands out
        else:
            pool = [*h[3:6], *h[11:-4]]
        pool = [p for p in pool if p.card in self.demo.enrolled]
        if not pool:
            return None
        p = self.rng.choice(pool)
        if self.rng.random() < 0.06:
            return Event(0, station, "poor press", p.card, _poor(p), needs=p.card)
        return Event(0, station, "patient", p.card, _good(p), needs=p.card)

    # -- the desks ----------------------------------------------------------------------------------
    def start(self) -> None:
        for key in STATIONS:
            t = threading.Thread(target=self._station_worker, args=(key,), name=f"desk-{key}", daemon=True)
            t.start()
            self._threads.append(t)

    def idle(self) -> bool:
        """No visit waiting in any queue (the one in hand may still be going on)."""
        return all(q.empty() for q in self.queues.values())

    def join(self) -> None:
        for t in self._threads:
            t.join(10)

    def _station_worker(self, key: str) -> None:
        demo = self.demo
        st = demo.stations[key]
        q = self.queues[key]
        while not demo.stopping.is_set():
            try:
                ev: Event = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if ev.label == NETWORK_CUT:
                st.relay.cut(self.OFFLINE_S)
                demo.say(f"!! {st.title}: network cut for {self.OFFLINE_S:.0f} s; results wait in its outbox")
                threading.Thread(target=self._watch_reconnect, args=(st,), daemon=True).start()
                continue
            if ev.needs and not self._ready(st, ev):
                log.warning("%s: templates for %s never arrived; visit skipped", key, ev.needs)
                continue
            try:
                result = st.visit(ev.card, ev.images())
            except Exception:  # a broken visit must not end the demo
                log.exception("visit at %s failed", key)
                continue
            if result is not None:
                self._print_result(st, ev, result)

    def _ready(self, st: DemoStation, ev: Event) -> bool:
        """Whether `ev`'s card can be checked at `st`: the enrolling desk's site gets the templates
        through its feed; another site's station fetches the card from the registry when it is
        presented (issue 18), so there the registry's enrollment is enough."""
        enrolled = self.demo.enrolled

        def at_registry() -> bool:
            return ev.needs in enrolled and (ev.needs_delegate is None or ev.needs_delegate in enrolled)

        elsewhere = st.site_id != self.demo.stations["desk"].site_id
        return st.wait_templates(ev.needs, 60, ev.needs_delegate, give_up=self._gives_up(ev.needs_delegate or ev.needs),
                                 ready=at_registry if elsewhere else None)

    def _gives_up(self, key: str) -> Callable[[], bool]:
        """Stop waiting for templates: the demo ends, or enrollment is over and `key` is not enrolled."""
        demo = self.demo

        def check() -> bool:
            return demo.stopping.is_set() or (demo.enrollment_done.is_set() and key not in demo.enrolled)
        return check

    def _watch_reconnect(self, st: DemoStation) -> None:
        stopping = self.demo.stopping
        while not stopping.is_set() and not st.relay.online:
            time.sleep(0.2)
        link = st.station.link
        deadline = time.monotonic() + 30
        while not stopping.is_set() and time.monotonic() < deadline:
            if link and link.connected.is_set() and st.station.outbox.count() == 0:
                self.demo.say(f"!! {st.title}: back online; outbox drained to the registry")
                return
            time.sleep(0.2)

    def _print_result(self, st: DemoStation, ev: Event, result) -> None:
        from fpverify.edge.workflow import MESSAGES

        names = {p.card: p.name for p in self.cast.card_holders()}
        pending = st.station.outbox.count()
        queued = f" [queued offline: {pending}]" if not st.relay.online else ""
        self.demo.say(f"{datetime.now().strftime('%H:%M:%S')} {st.title:<28} {ev.label:<30} {result.card_number} "
                      f"{names.get(result.card_number, ''):<6} -> {result.outcome.value}: "
                      f"{MESSAGES[result.outcome]}{queued}")

    def play(self, duration: float | None, pace: float = 2.0) -> None:
        """Run the script, then random traffic every ~`pace` s per station until `duration` (None: until stop)."""
        stopping = self.demo.stopping
        start = time.monotonic()
        script = sorted(self.script(), key=lambda e: e.at)
        next_random = {k: start + 9.0 + i * 0.7 for i, k in enumerate(STATIONS)}
        while not stopping.is_set():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            while script and now - start >= script[0].at:
                ev = script.pop(0)
                self.queues[ev.station].put(ev)
            for key in STATIONS:
                if now >= next_random[key] and self.queues[key].empty():
                    ev = self.random_event(key)
                    if ev is not None:
                        self.queues[key].put(ev)
                    next_random[key] = now + pace * self.rng.uniform(0.6, 1.4) * (2 if key == "ward" else 1)
            stopping.wait(0.1)
