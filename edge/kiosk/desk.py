"""One desk, one check at a time: cards from the page's reader or from the HIS become jobs that a
single worker runs through the station; the HIS reads a job's outcome or cancels it.

A cancel takes effect while the station waits for the finger (the sensor guard checks it between
polls, within ~50 ms): nothing is recorded for a cancelled check. Once the image is being read the
check runs to its outcome, which is recorded and reported as usual.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fpverify.edge.kiosk.enrolling import Declined, EnrollRequest, run_enrollment
from fpverify.edge.prompts import Prompt, Step
from fpverify.edge.sensor.driver import NoFinger
from fpverify.edge.wire import VerificationResult

log = logging.getLogger("fpverify.edge.kiosk")

QUEUED, RUNNING, DONE, CANCELLED, NOT_READ, FAILED = (
    "queued",
    "running",
    "done",
    "cancelled",
    "card_not_read",
    "failed",
)
DECLINED = "declined"  # enrollment: the holder did not consent
FINAL = (DONE, CANCELLED, NOT_READ, FAILED, DECLINED)


class Cancelled(Exception):
    """The check was cancelled before a press was decided (not a sensor error: nothing is recorded)."""


class DeskBusy(RuntimeError):
    def __init__(self, job: Job) -> None:
        super().__init__(f"the desk is busy with verification {job.id}")
        self.job = job


def placement_hint(image: np.ndarray, block: int = 16) -> str | None:
    """Where a too-small press sat: 'move_up' when the print lies in the lower part of the window, etc.
    Computed on the station from the image in memory; only the code goes to the page."""
    h, w = (image.shape[0] // block) * block, (image.shape[1] // block) * block
    if h == 0 or w == 0:
        return None
    blocks = image[:h, :w].reshape(h // block, block, w // block, block).astype(np.float32)
    ridged = blocks.std(axis=(1, 3)) > 12  # ridges vary; blank platen does not
    if ridged.sum() < 2 or ridged.mean() > 0.6:
        return None
    ys, xs = np.nonzero(ridged)
    cy, cx = (ys.mean() + 0.5) / ridged.shape[0], (xs.mean() + 0.5) / ridged.shape[1]
    if cy > 0.62:
        return "move_up"
    if cy < 0.38:
        return "move_down"
    if cx > 0.65:
        return "move_left"
    if cx < 0.35:
        return "move_right"
    return None


class GuardedSensor:
    """The sensor as the workflow sees it: cancellable while waiting for the finger, says when the
    image starts coming (the page asks the patient to keep still) and notes where the press sat."""

    def __init__(
        self, inner: Any, on_reading: Callable[[], None] | None = None, poll_s: float = 0.05
    ) -> None:
        self.inner = inner
        self.on_reading = on_reading
        self.poll_s = poll_s
        self.cancel = threading.Event()
        self.placement: str | None = None

    def __getattr__(self, name: str) -> Any:  # is_open, reconnect, open, close ...
        return getattr(self.inner, name)

    def capture(self, wait_s: float = 10.0) -> np.ndarray:
        if self.cancel.is_set():
            raise Cancelled()
        if not hasattr(self.inner, "finger_present"):  # a plain capture() sensor: not cancellable mid-wait
            image = self.inner.capture(wait_s)
        else:
            deadline = time.monotonic() + wait_s
            while not self.inner.finger_present():
                if self.cancel.is_set():
                    raise Cancelled()
                if time.monotonic() >= deadline:
                    raise NoFinger(f"no finger on the sensor within {wait_s:g} s")
                time.sleep(self.poll_s)
            if self.on_reading:
                self.on_reading()
            image = self.inner.download_image()
        self.placement = placement_hint(image)
        return image


@dataclass
class Job:
    card_number: str
    source: str  # "reader" (the page) or "his"
    operator_id: str | None = None
    purpose: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = QUEUED
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    result: VerificationResult | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    enrollment: EnrollRequest | None = None  # set: an enrollment, not a verification
    sign_in: bool = False  # a clerk opening a shift with their finger (edge/kiosk/shift.py)

    def finish(self, state: str, result: VerificationResult | None = None, error: str | None = None) -> None:
        self.state, self.result, self.error = state, result, error
        self.finished_at = datetime.now(UTC)
        self.done.set()


class Desk:
    """The queue of one (a desk verifies one person at a time) and its worker thread."""

    def __init__(self, station: Any, keep: int = 200) -> None:
        self.station = station
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.on_start: Callable[[Job], None] | None = None  # the screen shows the job's purpose

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="desk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            if self._current is not None:
                self.station.guard.cancel.set()
        self._queue.put(None)
        if self._thread:
            self._thread.join(30)

    def submit(
        self,
        card_number: str,
        source: str,
        operator_id: str | None = None,
        purpose: str | None = None,
        enrollment: EnrollRequest | None = None,
        sign_in: bool = False,
    ) -> Job:
        """Queue a check of an already parsed card number (edge.kiosk.cards). DeskBusy if one is going."""
        with self._lock:
            if self._current is not None and self._current.state not in FINAL:
                raise DeskBusy(self._current)
            if self._thread is None:
                raise RuntimeError("the desk is not started")
            job = Job(card_number, source, operator_id=operator_id, purpose=purpose, enrollment=enrollment,
                      sign_in=sign_in)
            self._current = job
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                self._jobs.popitem(last=False)
        self._queue.put(job)
        return job

    def current(self) -> Job | None:
        with self._lock:
            return self._current

    def busy(self) -> bool:
        with self._lock:
            return self._current is not None and self._current.state not in FINAL

    def answer_consent(self, agree: bool) -> bool:
        """The holder's answer on the screen; False when no enrollment is asking."""
        with self._lock:
            job = self._current
            if (
                job is None
                or job.enrollment is None
                or job.state != RUNNING
                or job.enrollment.consent.is_set()
            ):
                return False
            job.enrollment.agreed = agree
            job.enrollment.consent.set()
            return True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state in FINAL:
                return job
            if job.state == QUEUED:
                job.finish(CANCELLED)
            else:
                self.station.guard.cancel.set()
        return job

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:  # cancelled while queued
                    continue
                job.state = RUNNING
                self.station.guard.cancel.clear()
            if self.on_start:
                self.on_start(job)
            if job.enrollment is not None:
                self._enroll(job)
                continue
            if job.sign_in:
                self._sign_in(job)
                continue
            try:
                result = self.station.handle_card(
                    job.card_number, operator_id=job.operator_id, purpose=job.purpose, cancellable=True
                )
            except Cancelled:
                job.finish(CANCELLED)
                self.station.show(Prompt(Step.CANCELLED))
                continue
            except Exception as exc:  # never let one check kill the desk
                log.exception("check failed")
                job.finish(FAILED, error=str(exc)[:300])
                continue
            if result is None:
                job.finish(FAILED, error=self.station.last_problem or "the station could not verify")
            else:
                job.finish(DONE, result=result)

    def _sign_in(self, job: Job) -> None:
        """The clerk's finger against the site's clerks only (never a patient's templates)."""
        from fpverify.edge.kiosk.shift import SignInRefused

        st = self.station
        try:
            job.operator_id = st.shift.open_with_finger(st.guard, st.engine, st.cfg.station, show=st.show)
        except Cancelled:
            job.finish(CANCELLED)
        except SignInRefused as exc:
            job.finish(FAILED, error=exc.reason)
        except Exception as exc:  # never let a sign-in kill the desk
            log.exception("sign-in failed")
            job.finish(FAILED, error=str(exc)[:300])
        else:
            job.finish(DONE)
        st.show(Prompt(Step.PRESENT_CARD))

    def _enroll(self, job: Job) -> None:
        from fpverify.edge.enroll import EnrollError

        try:
            run_enrollment(self.station, job.card_number, job.enrollment)
        except Cancelled:
            job.finish(CANCELLED)
            self.station.show(Prompt(Step.CANCELLED))
        except Declined as exc:
            job.finish(DECLINED, error=str(exc))
        except EnrollError as exc:
            job.finish(FAILED, error=str(exc)[:300])
        except Exception as exc:  # never let one enrollment kill the desk
            log.exception("enrollment failed")
            job.finish(FAILED, error=str(exc)[:300])
        else:
            job.finish(DONE)
