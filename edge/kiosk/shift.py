"""A clerk's shift at the desk: opened with the clerk's own finger or PIN, ended by sign-out, by
timeout (`shift.timeout_s` without a check, or `shift.max_s` in all) or when the staff feed says the
account is frozen or gone. While it is open, every result carries its operator.

Sign-in by finger compares the press with the templates of the site's active clerks only (the staff
tables, edge/staff.py): never with a patient's. The threshold is the station's operating point
raised for the number of templates compared (Engine.threshold_for), as for a card.

The PIN fallback follows the registry's login rules: one answer for an unknown clerk, a frozen one
or a wrong PIN (and the same Argon2 work); after `pin_free_failures` wrong PINs in a row each one
doubles the wait, and after `pin_max_failures` the PIN is off for that clerk until a finger sign-in
or a new PIN from the registry. The failures are kept in the encrypted store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fpverify.edge.config import ShiftSection, StationSection
from fpverify.edge.prompts import Prompt, Step
from fpverify.edge.sensor.driver import NoFinger, SensorError
from fpverify.edge.staff import StaffStore

log = logging.getLogger("fpverify.edge.shift")

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not-a-real-pin")  # the same work for an unknown clerk as for a wrong PIN
MAX_WAIT_S = 3600.0


class SignInRefused(Exception):
    """Why no shift opened: a code for the screen (edge/kiosk/texts.py SHIFT_NOTES), never more."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass
class OpenShift:
    operator_id: str
    method: str  # finger | pin
    opened_at: datetime
    opened_mono: float
    last_mono: float


class Shift:
    def __init__(self, cfg: ShiftSection, staff: StaffStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.staff = staff
        self.clock = clock
        self._lock = threading.RLock()
        self._open: OpenShift | None = None
        self.note: str | None = None  # the last sign-in problem or why the last shift ended (a code)
        self.retry_after: int | None = None
        self.on_change: Callable[[], None] | None = None  # the kiosk page re-renders
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="shift-clock", daemon=True)
        self._ticker.start()

    @property
    def required(self) -> bool:
        return self.cfg.required

    # -- state ---------------------------------------------------------------------------------
    def operator(self) -> str | None:
        """The signed-in clerk, or None (a shift past its timeout ends here)."""
        with self._lock:
            self._expire()
            return self._open.operator_id if self._open else None

    def current(self) -> OpenShift | None:
        with self._lock:
            self._expire()
            return self._open

    def touch(self) -> None:
        """A check was made: the idle timeout starts again."""
        with self._lock:
            if self._open:
                self._open.last_mono = self.clock()

    def remaining_s(self) -> float | None:
        with self._lock:
            if not self._open:
                return None
            now = self.clock()
            return max(0.0, min(self._open.last_mono + self.cfg.timeout_s, self._open.opened_mono + self.cfg.max_s) - now)

    def sign_out(self, reason: str = "signed_out") -> None:
        with self._lock:
            if self._open is None:
                return
            log.info("shift of %s ended: %s", self._open.operator_id, reason)
            self._open, self.note, self.retry_after = None, reason, None
        self._changed()

    def roster_changed(self, ended: set[str]) -> None:
        """After a staff sync: a clerk frozen or removed at the registry loses the open shift."""
        op = self.operator()
        member = self.staff.member(op) if op else None
        if op and (op in ended or member is None or member.status != "active"):
            self.sign_out("account_ended")

    # -- opening -------------------------------------------------------------------------------
    def open_with_finger(self, sensor: Any, engine: Any, station: StationSection,
                         show: Callable[[Prompt], None] | None = None) -> str:
        """Capture (quality gate, up to station.max_attempts) and compare with the clerks' templates."""
        templates = self.staff.templates()
        if not templates:
            return self._refuse("no_staff")
        if sensor is None or engine is None:
            return self._refuse("sensor")
        report = None
        for attempt in range(1, station.max_attempts + 1):
            if show:
                show(Prompt(Step.PLACE_FINGER, attempt=attempt, detail="sign_in",
                            reasons=tuple(report.reasons) if report is not None else ()))
            try:
                image = sensor.capture(station.capture_wait_s)
            except NoFinger:
                return self._refuse("no_finger")
            except SensorError as exc:
                log.warning("sign-in: sensor problem: %s", exc)
                return self._refuse("sensor")
            report = engine.quality(image)
            if report.score >= station.min_quality:
                break
        else:
            return self._refuse("poor_press")
        try:
            probe = engine.extract(image)
        except ValueError:
            return self._refuse("poor_press")
        best, who, compared = -1.0, None, 0
        for t in templates:
            try:
                score = engine.compare(probe, engine.parse(t))
            except ValueError as exc:
                log.warning("skipped unreadable staff template %s: %s", t.template_id, exc)
                continue
            compared += 1
            if score > best:
                best, who = score, t.operator_id
        if not compared or best < engine.threshold_for(compared):
            log.info("sign-in by finger refused: no clerk's template matched (%d compared)", compared)
            return self._refuse("not_recognised")
        self.staff.set_pin_failures(who, 0, None)  # the clerk is here in person: the PIN works again
        return self._start(who, "finger")

    def open_with_pin(self, operator_id: str, pin: str) -> str:
        if not self.cfg.pin:
            return self._refuse("pin_disabled")
        operator_id = operator_id.strip()[:64]
        now = datetime.now(UTC)
        failures, not_before = self.staff.pin_failures(operator_id)
        if failures >= self.cfg.pin_max_failures:
            return self._refuse("pin_off")
        if not_before and now < not_before:  # not even checked while the wait lasts
            return self._refuse("pin_locked", int((not_before - now).total_seconds()) + 1)
        member = self.staff.member(operator_id)
        usable = member is not None and member.status == "active" and member.pin_hash is not None
        try:
            ok = _hasher.verify(member.pin_hash if usable else _DUMMY, pin) and usable
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            failures += 1
            wait = None
            if failures >= self.cfg.pin_free_failures:
                wait = min(self.cfg.pin_delay_s * 2 ** (failures - self.cfg.pin_free_failures), MAX_WAIT_S)
            self.staff.set_pin_failures(operator_id, failures, now + timedelta(seconds=wait) if wait else None)
            log.info("sign-in by PIN refused for %r (%d in a row)", operator_id, failures)
            if failures >= self.cfg.pin_max_failures:
                return self._refuse("pin_off")
            return self._refuse("pin_wrong", int(wait) if wait else None)
        self.staff.set_pin_failures(operator_id, 0, None)
        return self._start(operator_id, "pin")

    def _start(self, operator_id: str, method: str) -> str:
        now = self.clock()
        with self._lock:
            self._open = OpenShift(operator_id, method, datetime.now(UTC), now, now)
            self.note, self.retry_after = None, None
        log.info("shift opened by %s (%s)", operator_id, method)
        self._changed()
        return operator_id

    def _refuse(self, reason: str, retry_after: int | None = None):
        with self._lock:
            self.note, self.retry_after = reason, retry_after
        self._changed()
        raise SignInRefused(reason, retry_after)

    # -- timeout -------------------------------------------------------------------------------
    def _expire(self) -> None:
        if self._open is None:
            return
        now = self.clock()
        if now - self._open.last_mono >= self.cfg.timeout_s or now - self._open.opened_mono >= self.cfg.max_s:
            log.info("shift of %s ended: timeout", self._open.operator_id)
            self._open, self.note = None, "timeout"
            threading.Thread(target=self._changed, daemon=True).start()  # not under our lock

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._expire()

    def _changed(self) -> None:
        if self.on_change:
            try:
                self.on_change()
            except Exception:  # the page is closing
                log.debug("shift change not shown", exc_info=True)

    def close(self) -> None:
        self._stop.set()
