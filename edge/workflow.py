"""Verification at the desk: card number in, finger captured, decision shown, result durable.

card -> card status (blocked?) -> the holder's and valid delegates' templates (none: not enrolled)
-> capture -> quality gate (up to max_attempts) -> extract -> compare with every template -> decide
on the best score at the configured operating point, its threshold raised for the number of
templates compared (matcher.best_of_n; or, when every template compared carries its impostor-cohort
statistics, each template's own raw threshold mean + sd * matcher.cohort_threshold(point, n): see
`_decide` and docs/station.md) -> commit to the outbox -> only then show the outcome.

The sensor is anything with capture(wait_s) -> uint8 array raising SensorError (edge.sensor.driver
.SensorDriver on a station); the matcher is used through its public API only (matcher.extract,
compare, quality, Template.from_bytes, THRESHOLDS, best_of_n, cohort_threshold, warm_up).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from fpverify.edge import fetched
from fpverify.edge.cache import CachedTemplate, Store
from fpverify.edge.config import StationSection
from fpverify.edge.outbox import Outbox, new_result_id
from fpverify.edge.prompts import Display, Prompt, Step
from fpverify.edge.sensor.driver import NoFinger, SensorError
from fpverify.edge.wire import HolderRole, Outcome, VerificationResult

log = logging.getLogger("fpverify.edge.workflow")

CARD_RE = re.compile(r"^[A-Za-z0-9-]{4,32}$")

MESSAGES = {
    Outcome.MATCH: "verified",
    Outcome.DELEGATE_MATCH: "verified: authorised delegate of the card holder (代取药)",
    Outcome.NO_MATCH: "NOT this card's holder: retain the card and call the insurance office",
    Outcome.NOT_ENROLLED: "card holder not enrolled: check the ID document; offer enrollment",
    Outcome.CARD_BLOCKED: "card blocked: retain the card and call the insurance office",
    Outcome.POOR_QUALITY: "fingerprint not readable: check the ID document instead",
    Outcome.SENSOR_ERROR: "fingerprint sensor problem: check the ID document; call IT if it persists",
}
# A card neither in the cache nor fetched (offline, or the registry refused): the result's detail says why.
NOT_HERE_MESSAGE = (f"{fetched.NOT_HERE}: card not in this station's cache and not fetched from the registry; "
                    "check the ID document, try again when the station is online")


class Sensor(Protocol):
    def capture(self, wait_s: float = 10.0) -> np.ndarray: ...
    def reconnect(self) -> None: ...


class ConsoleDisplay:
    """The desk's screen: a terminal. Shows outcomes, never biometric data."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)

    def show(self, prompt: Prompt) -> None:
        self.console.print(f"[bold]{prompt.text()}[/bold]")

    def outcome(self, result: VerificationResult, message: str) -> None:
        ok = result.outcome in (Outcome.MATCH, Outcome.DELEGATE_MATCH)
        colour = "green" if ok else "red" if result.outcome in (Outcome.NO_MATCH, Outcome.CARD_BLOCKED) else "yellow"
        self.console.print(f"[{colour} bold]{result.card_number}: {message}[/]")


class RecordError(RuntimeError):
    """The result could not be made durable (disk full, store failing): the outcome is not shown."""


class InvalidCard(ValueError):
    """The card reader delivered something that is not a card number."""


def normalise_card(text: str) -> str:
    card = text.strip()
    if not CARD_RE.match(card):
        raise InvalidCard(f"not a card number: {len(card)} characters; 4-32 letters, digits or '-' expected")
    return card


class Engine:
    """The matcher's public API plus a parsed-template cache (parsing is per template, not per check)."""

    def __init__(self, threshold_name: str, matcher_module: Any = None, parsed_cache: int = 20000,
                 threshold_score: float | None = None) -> None:
        if matcher_module is None:
            import fpverify.matcher as matcher_module
        self.m = matcher_module
        if threshold_name not in self.m.THRESHOLDS:
            raise ValueError(f"unknown operating point {threshold_name!r}; matcher.THRESHOLDS has "
                             f"{sorted(self.m.THRESHOLDS)}")
        self.threshold_name = threshold_name
        # An explicit score (station.threshold_score) replaces the operating point's.
        self.threshold = float(self.m.THRESHOLDS[threshold_name] if threshold_score is None else threshold_score)
        self.explicit = threshold_score is not None  # an explicit raw score keeps the raw rule
        self._parsed: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()
        self._parsed_max = parsed_cache
        self.m.warm_up()  # compile the matcher's kernels now, not during the first patient's check

    @classmethod
    def for_station(cls, cfg: StationSection) -> Engine:
        """The engine at the station's configured decision threshold."""
        return cls(cfg.threshold, threshold_score=cfg.threshold_score)

    def quality(self, image: np.ndarray):
        return self.m.quality(image)

    def extract(self, image: np.ndarray):
        return self.m.extract(image)

    def parse(self, t: CachedTemplate):
        hit = self._parsed.get(t.template_id)
        if hit is not None and hit[0] == t.template:
            self._parsed.move_to_end(t.template_id)
            return hit[1]
        parsed = self.m.Template.from_bytes(t.template)
        self._parsed[t.template_id] = (t.template, parsed)
        if len(self._parsed) > self._parsed_max:
            self._parsed.popitem(last=False)
        return parsed

    def compare(self, a, b) -> float:
        return float(self.m.compare(a, b))

    def threshold_for(self, n: int) -> float:
        """The decision threshold when the best of n template scores is taken (matcher.best_of_n).

        An impostor gets n chances to score high, so the threshold rises with n (by the impostor
        tail's scale times ln n) and the operating point's false-match rate holds per decision.
        """
        return float(self.m.best_of_n(self.threshold, n))

    def cohort_threshold_for(self, n: int) -> float:
        """The normalised-score threshold of a best-of-n decision at the operating point (issue 17)."""
        return float(self.m.cohort_threshold(self.threshold_name, n))


@dataclass
class Decision:
    outcome: Outcome
    score: float | None = None
    finger: int | None = None
    delegate_id: str | None = None
    detail: str | None = None
    threshold: float | None = None  # the threshold this decision was made at (it depends on n)


class Verifier:
    def __init__(self, cfg: StationSection, store: Store, outbox: Outbox, engine: Engine | None,
                 sensor: Sensor | None = None, display: Display | None = None,
                 on_recorded: Callable[[VerificationResult], None] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.outbox = outbox
        self.engine = engine
        self.sensor = sensor
        self.display = display
        self.on_recorded = on_recorded

    # -- entry points --------------------------------------------------------------------------
    def verify(self, card_text: str, operator_id: str | None = None) -> VerificationResult:
        """The whole desk interaction for one card. Raises InvalidCard (nothing recorded) only."""
        card = normalise_card(card_text)
        early = self._precheck(card)
        if early is not None:
            return self._record(card, early, attempts=0, operator_id=operator_id)
        if self.sensor is None or self.engine is None:
            raise RuntimeError("cannot verify: " + ("no sensor configured" if self.sensor is None
                                                     else "the matcher is unavailable"))
        templates = self.store.templates_for(card)
        if not getattr(self.sensor, "is_open", True):  # a reconnect after the last fault failed: try now
            try:
                self.sensor.reconnect()
            except SensorError as exc:
                return self._record(card, Decision(Outcome.SENSOR_ERROR, detail=f"sensor not available: {exc}"[:500]),
                                    attempts=0, operator_id=operator_id)
        report = None
        for attempt in range(1, self.cfg.max_attempts + 1):
            self._show(Prompt(Step.PLACE_FINGER, attempt=attempt,
                              reasons=tuple(report.reasons) if report is not None else ()))
            try:
                image = self.sensor.capture(self.cfg.capture_wait_s)
            except NoFinger as exc:
                return self._record(card, Decision(Outcome.SENSOR_ERROR, detail=f"no finger: {exc}"),
                                    attempts=attempt, operator_id=operator_id)
            except SensorError as exc:
                self._reconnect_sensor()
                return self._record(card, Decision(Outcome.SENSOR_ERROR, detail=str(exc)[:500]),
                                    attempts=attempt, operator_id=operator_id)
            report = self.engine.quality(image)
            if report.score >= self.cfg.min_quality:
                decision = self._decide(image, templates)
                return self._record(card, decision, attempts=attempt, quality=int(report.score),
                                    operator_id=operator_id)
        return self._record(card, Decision(Outcome.POOR_QUALITY, detail="; ".join(report.reasons)[:500] or None),
                            attempts=self.cfg.max_attempts, quality=int(report.score), operator_id=operator_id)

    def verify_image(self, card_text: str, image: np.ndarray, operator_id: str | None = None) -> VerificationResult:
        """One attempt with an image already in memory (no retries): the bench and bulk tests use it."""
        card = normalise_card(card_text)
        early = self._precheck(card)
        if early is not None:
            return self._record(card, early, attempts=0, operator_id=operator_id)
        if self.engine is None:
            raise RuntimeError("cannot verify: the matcher is unavailable")
        report = self.engine.quality(image)
        if report.score < self.cfg.min_quality:
            return self._record(card, Decision(Outcome.POOR_QUALITY, detail="; ".join(report.reasons)[:500] or None),
                                attempts=1, quality=int(report.score), operator_id=operator_id)
        decision = self._decide(image, self.store.templates_for(card))
        return self._record(card, decision, attempts=1, quality=int(report.score), operator_id=operator_id)

    # -- steps ---------------------------------------------------------------------------------
    def _precheck(self, card: str) -> Decision | None:
        missing = fetched.ensure(self.store, card)  # not in the cache: fetched when online (issue 18)
        if self.store.card_status(card) == "blocked":
            return Decision(Outcome.CARD_BLOCKED)
        if not self.store.templates_for(card):
            if missing is None or missing == fetched.UNKNOWN_AT_REGISTRY:
                return Decision(Outcome.NOT_ENROLLED, detail=missing)  # enrolled nowhere: offer enrollment
            return Decision(Outcome.NOT_ENROLLED, detail=f"{fetched.NOT_HERE}: {missing}")
        return None

    def _decide(self, image: np.ndarray, templates: list[CachedTemplate]) -> Decision:
        try:
            probe = self.engine.extract(image)
        except ValueError as exc:  # the matcher's clear error for an unusable image
            return Decision(Outcome.POOR_QUALITY, detail=str(exc)[:500])
        scored: list[tuple[float, CachedTemplate]] = []
        for t in templates:
            try:
                scored.append((self.engine.compare(probe, self.engine.parse(t)), t))
            except ValueError as exc:  # one bad cached template must not hide the others
                log.warning("skipped unreadable cached template %s: %s", t.template_id, exc)
        if not scored:
            return Decision(Outcome.NO_MATCH, score=0.0, threshold=self.engine.threshold)
        # One decision over every template compared (holder's and delegates'): its threshold is set
        # for that count n, so a card with more templates gives an impostor no better odds.
        n = len(scored)
        if not self.engine.explicit and all(t.cohort_sd is not None and t.cohort_mean is not None for _, t in scored):
            # Cohort rule (issue 17): template i accepts when s_i >= mean_i + sd_i * c(point, n); the
            # winner is the template of best normalised score (s_i - mean_i) / sd_i, and the result
            # records its raw score and its raw threshold (score >= threshold <=> accepted).
            c = self.engine.cohort_threshold_for(n)
            ranked = [((s - t.cohort_mean) / t.cohort_sd, s, t.cohort_mean + t.cohort_sd * c, t) for s, t in scored]
        else:  # the raw rule: one threshold for every template; any template without statistics
            raw = self.engine.threshold_for(n)
            ranked = [(s, s, raw, t) for s, t in scored]
        best = {role: max((r for r in ranked if r[3].role == role), default=None, key=lambda r: r[0])
                for role in (HolderRole.HOLDER, HolderRole.DELEGATE)}
        h, d = best[HolderRole.HOLDER], best[HolderRole.DELEGATE]
        # Both accepted: the better-ranked role wins (a delegate is not "the holder" because the
        # holder's templates happen to clear their thresholds too); ties go to the holder.
        if h is not None and h[1] >= h[2] and (d is None or h[0] >= d[0]):
            return Decision(Outcome.MATCH, score=h[1], finger=h[3].finger, threshold=h[2])
        if d is not None and d[1] >= d[2]:
            return Decision(Outcome.DELEGATE_MATCH, score=d[1], finger=d[3].finger, delegate_id=d[3].delegate_id,
                            threshold=d[2])
        top = max(ranked, key=lambda r: r[0])
        return Decision(Outcome.NO_MATCH, score=max(top[1], 0.0), threshold=top[2])

    def _record(self, card: str, d: Decision, attempts: int, quality: int | None = None,
                operator_id: str | None = None) -> VerificationResult:
        result = VerificationResult(
            result_id=new_result_id(), device_id=self._device_id, site_id=self._site_id, card_number=card,
            outcome=d.outcome, purpose=self.cfg.purpose, captured_at=datetime.now(UTC),
            score=None if d.score is None else round(max(d.score, 0.0), 4),
            threshold=d.threshold if d.score is not None else None,
            finger=d.finger, delegate_id=d.delegate_id, attempts=attempts, quality=quality,
            operator_id=operator_id, detail=d.detail)
        try:
            self.outbox.last_recorded = None
            self.outbox.add(result)  # durable (and signed, if configured) before anyone is told
            result = self.outbox.last_recorded or result
        except Exception as exc:  # sqlite 'database or disk is full', I/O errors: nothing half-written
            raise RecordError(f"the result could not be saved ({exc}); this check does not count") from exc
        if self.on_recorded:
            self.on_recorded(result)
        if self.display:
            self.display.outcome(result, NOT_HERE_MESSAGE if fetched.not_here(result.detail) else MESSAGES[result.outcome])
        log.info("result %s: %s", result.result_id, result.outcome.value)
        return result

    @property
    def _device_id(self) -> str:
        return self.cfg.device_id

    @property
    def _site_id(self) -> str:
        return self.cfg.site_id

    def _show(self, prompt: Prompt) -> None:
        if self.display:
            self.display.show(prompt)

    def _reconnect_sensor(self) -> None:
        try:
            self.sensor.reconnect()
        except SensorError as exc:
            log.warning("sensor reconnect failed (next capture retries): %s", exc)
