"""What the station asks of the person at the desk, as data: one `Prompt` per screen state.

The workflow and the enrollment say *what* is asked (a `Step` and its details); each display decides
how to show it (the console in English, the kiosk page through the message catalogs), and the demo's
simulated hand acts on the step, never on the wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from fpverify.edge.wire import VerificationResult


class Step(StrEnum):
    PRESENT_CARD = "present_card"  # idle: the desk waits for a card (kiosk)
    CARD_READ = "card_read"  # a card was read; `fingers` are the enrolled ones to ask for
    PLACE_FINGER = "place_finger"  # a press is awaited (first try, or again after a poor one)
    LIFT_FINGER = "lift_finger"  # between two presses (enrollment)
    READING = "reading"  # a finger is on the sensor and its image is coming over the serial line
    POOR_PRESS = "poor_press"  # the last press was not usable; `reasons` say why; a new press follows
    CARD_NOT_READ = "card_not_read"  # the card text did not validate; scan again
    STATION_PROBLEM = "station_problem"  # the station cannot verify now (sensor, matcher, storage)
    CANCELLED = "cancelled"  # the check was cancelled (by the HIS) before a press was decided
    CONSENT = "consent"  # enrollment: the holder's separate consent to fingerprint processing is asked
    ENROLLED = "enrolled"  # enrollment saved; `fingers` enrolled; detail "pending_review" if held for review
    ENROLL_FAILED = "enroll_failed"  # enrollment not completed (declined, refused, sensor); nothing saved


@dataclass(frozen=True)
class Prompt:
    step: Step
    finger: int | None = None  # ISO finger position, when a specific finger is asked for
    impression: int | None = None  # enrollment: which press of `of`
    of: int | None = None
    attempt: int = 1
    reasons: tuple[str, ...] = ()  # quality reasons of the last press (matcher.quality codes)
    detail: str | None = None  # for staff and logs, never biometric data
    fingers: tuple[int, ...] = ()  # CARD_READ: ISO positions enrolled for the card, the holder's first

    def text(self) -> str:
        """Plain English, for the console and logs."""
        words = self._words()
        return words[:1].upper() + words[1:]

    def _words(self) -> str:
        where = f"Finger {self.finger}: " if self.finger is not None else ""
        if self.impression is not None and self.of is not None:
            where += f"impression {self.impression} of {self.of}" + (f" (try {self.attempt})" if self.attempt > 1 else "") + ": "
        if self.step is Step.PLACE_FINGER:
            return where + ("place the finger on the sensor" if self.attempt == 1 and not self.reasons
                            else f"press again ({', '.join(self.reasons) or 'low quality'})")
        if self.step is Step.LIFT_FINGER:
            return "Lift the finger"
        if self.step is Step.POOR_PRESS:
            return where + f"press not usable ({', '.join(self.reasons) or 'unclear'}); again"
        if self.step is Step.CARD_NOT_READ:
            return f"Card not read ({self.detail}); scan again"
        if self.step is Step.PRESENT_CARD:
            return "Present the card"
        if self.step is Step.CARD_READ:
            return "Card read" + (f"; finger {', '.join(map(str, self.fingers))}" if self.fingers else "")
        if self.step is Step.READING:
            return "Reading the finger; keep still"
        if self.step is Step.CANCELLED:
            return "Check cancelled"
        if self.step is Step.CONSENT:
            return "Consent to fingerprint processing asked on the screen"
        if self.step is Step.ENROLLED:
            return f"Enrolled: finger {', '.join(map(str, self.fingers))}" + (f" ({self.detail})" if self.detail else "")
        if self.step is Step.ENROLL_FAILED:
            return f"Enrollment not completed: {self.detail or 'unknown reason'}"
        return f"{self.detail or 'station problem'}: check the ID document; call IT"


class Display(Protocol):
    """The desk's screen. Shows prompts and outcomes, never biometric data."""

    def show(self, prompt: Prompt) -> None: ...
    def outcome(self, result: VerificationResult, message: str) -> None: ...


class Displays:
    """Several displays as one (the kiosk page and, in the demo, the simulated hand at the desk)."""

    def __init__(self, *displays: Display) -> None:
        self.displays = [d for d in displays if d is not None]

    def show(self, prompt: Prompt) -> None:
        for d in self.displays:
            d.show(prompt)

    def outcome(self, result: VerificationResult, message: str) -> None:
        for d in self.displays:
            d.outcome(result, message)
