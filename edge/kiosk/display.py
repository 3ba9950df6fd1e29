"""The kiosk's side of `edge.prompts.Display`: prompts and outcomes become a `View` (codes only),
published to every open page through a small thread-safe hub (the workflow runs in the desk's
thread, the pages are served from an asyncio loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

from fpverify.edge.fetched import not_here
from fpverify.edge.kiosk.texts import View
from fpverify.edge.prompts import Prompt, Step
from fpverify.edge.wire import Outcome, VerificationResult


class Hub:
    """The current view and a change counter; pages wait for the counter to move."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._view = View()
        self._status: tuple[bool | None, int] = (None, 0)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._closed = False

    def snapshot(self) -> tuple[int, View, bool | None, int]:
        with self._lock:
            return self._seq, self._view, *self._status

    def publish(self, view: View | None = None, status: tuple[bool | None, int] | None = None) -> None:
        with self._lock:
            if view is not None:
                self._view = view
            if status is not None:
                if status == self._status and view is None:
                    return
                self._status = status
            self._seq += 1
            waiters = list(self._waiters)
        self._wake(waiters)

    def close(self) -> None:
        """End every page's event stream (the station stops): a stream left open would hold the
        server's graceful shutdown until it is cancelled, with a traceback in the log."""
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
        self._wake(waiters)

    @staticmethod
    def _wake(waiters) -> None:
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that page's loop is closed
                pass

    async def changes(
        self, keepalive_s: float = 15.0
    ) -> AsyncIterator[tuple[int, View, bool | None, int] | None]:
        """Yields each new state (None after keepalive_s without one, so a dead page is noticed)."""
        event = asyncio.Event()
        key = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(key)
        try:
            last = -1
            while not self._closed:
                event.clear()
                snap = self.snapshot()
                if snap[0] != last:
                    last = snap[0]
                    yield snap
                try:
                    await asyncio.wait_for(event.wait(), keepalive_s)
                except TimeoutError:
                    if not self._closed:
                        yield None
        finally:
            with self._lock:
                self._waiters.discard(key)


class KioskDisplay:
    """What the workflow shows, as views. After an outcome the screen returns to "present your card"
    after `hold_s` (the next card or prompt replaces it at once)."""

    def __init__(self, hub: Hub | None = None, hold_s: float = 8.0) -> None:
        self.hub = hub or Hub()
        self.hold_s = hold_s
        self._fingers: tuple[int, ...] = ()
        self._purpose: str | None = None
        self.placement_source: Callable[[], str | None] | None = None  # where the last press sat
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.on_view: Callable[[View], None] | None = None  # tests and the demo watch the screen

    # -- what the station tells the page besides the workflow's prompts ------------------------
    def set_purpose(self, purpose: str | None) -> None:
        self._purpose = purpose

    def idle(self) -> None:
        self._fingers = ()
        self._set(View("present_card"))

    # -- Display -------------------------------------------------------------------------------
    def show(self, prompt: Prompt) -> None:
        step = prompt.step
        if step is Step.PRESENT_CARD:
            return self.idle()
        if step is Step.CARD_READ:
            self._fingers = prompt.fingers
            return self._set(View("card_read"))
        finger = prompt.finger if prompt.finger is not None else (self._fingers[0] if self._fingers else None)
        reasons = tuple(prompt.reasons)
        if step in (Step.PLACE_FINGER, Step.POOR_PRESS):
            again = step is Step.POOR_PRESS or prompt.attempt > 1 or bool(reasons)
            placement = self.placement_source() if (again and self.placement_source) else None
            if placement and "small_area" in reasons:  # edge.kiosk.desk.placement_hint
                reasons += (placement,)
            if prompt.impression is not None:  # enrollment: press i of n
                screen = "enroll_again" if again else "enroll_press"
            else:
                screen = "press_again" if again else "place_finger"
            return self._set(
                View(
                    screen,
                    finger=finger,
                    reasons=reasons,
                    attempt=prompt.attempt,
                    impression=prompt.impression,
                    of=prompt.of,
                )
            )
        if step is Step.LIFT_FINGER and prompt.impression is not None:
            return self._set(View("enroll_lift", finger=finger, impression=prompt.impression, of=prompt.of))
        if step is Step.ENROLLED:
            screen = "enroll_review" if prompt.detail == "pending_review" else "enrolled"
            return self._set(View(screen, count=len(prompt.fingers)), hold=True)
        screens = {
            Step.READING: "reading",
            Step.LIFT_FINGER: "lift_finger",
            Step.CANCELLED: "cancelled",
            Step.CARD_NOT_READ: "card_not_read",
            Step.STATION_PROBLEM: "station_problem",
            Step.CONSENT: "consent",
            Step.ENROLL_FAILED: "enroll_failed",
        }
        view = View(screens[step], finger=finger, reasons=reasons)
        self._set(view, hold=step not in (Step.READING, Step.LIFT_FINGER, Step.CONSENT))

    def outcome(self, result: VerificationResult, message: str) -> None:
        screen = result.outcome.value
        if result.outcome == Outcome.NOT_ENROLLED and not_here(result.detail):
            screen = "not_enrolled_here"  # enrolled elsewhere perhaps: not "register your fingerprint"
        self._set(View(screen), hold=True)

    # -- internals -----------------------------------------------------------------------------
    def _set(self, view: View, hold: bool = False) -> None:
        view.purpose = self._purpose
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if hold:
                self._timer = threading.Timer(self.hold_s, self.idle)
                self._timer.daemon = True
                self._timer.start()
        self.hub.publish(view)
        if self.on_view:
            self.on_view(view)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
