"""Enrollment at the desk, on the kiosk screen: the clerk starts it from the HIS (their registry
login, the card, the fingers); the patient reads the consent text on the screen and answers on it
(PIPL separate consent, witnessed by the clerk); then at least three presses per finger with the
quality advice after each; the registry's duplicate check runs on upload (a hit is held for review);
the screen ends on a summary. Uses edge.enroll.Enroller for the capture, checks and upload."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fpverify.edge.presses import ENROLL_PRESSES
from fpverify.edge.prompts import Prompt, Step


@dataclass
class EnrollRequest:
    username: str  # the clerk's registry account (role enroller)
    password: str | None  # used once for the login, then forgotten
    fingers: tuple[int, ...] = (2, 7)  # two fingers by default: right and left index
    impressions: int = ENROLL_PRESSES
    delegate_id: str | None = None
    consent_wait_s: float = 120.0
    consent: threading.Event = field(default_factory=threading.Event)
    agreed: bool | None = None
    answer: dict | None = None  # the registry's answer to the upload


class Declined(Exception):
    """The holder did not consent (or did not answer in time): nothing was captured."""


def _wait_consent(req: EnrollRequest, cancel: threading.Event) -> None:
    from fpverify.edge.kiosk.desk import Cancelled

    deadline = time.monotonic() + req.consent_wait_s
    while not req.consent.wait(0.1):
        if cancel.is_set():
            raise Cancelled()
        if time.monotonic() > deadline:
            raise Declined("no answer to the consent question")
    if not req.agreed:
        raise Declined("the holder did not consent")


def run_enrollment(station, card: str, req: EnrollRequest) -> dict:
    """Raises EnrollError (refused, sensor, matcher), Declined or desk.Cancelled; shows the outcome."""
    from fpverify.edge.enroll import Enroller, EnrollError

    password, req.password = req.password, None
    try:
        enroller = Enroller(station.cfg, station.engine, station.guard, display=station.verifier.display)
    except EnrollError as exc:
        station.show(Prompt(Step.ENROLL_FAILED, detail=str(exc)))
        raise
    try:
        enroller.login(req.username, password or "")
        station.show(Prompt(Step.CONSENT))
        _wait_consent(req, station.guard.cancel)
        req.answer = enroller.enroll(
            card,
            list(req.fingers),
            impressions=req.impressions,
            delegate_id=req.delegate_id,
            consent_at=datetime.now(UTC),
        )
    except (EnrollError, Declined) as exc:
        station.show(Prompt(Step.ENROLL_FAILED, detail=str(exc)))
        raise
    finally:
        enroller.close()
    station.show(Prompt(Step.ENROLLED, fingers=req.fingers, detail=(req.answer or {}).get("status")))
    return req.answer
