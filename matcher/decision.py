"""The station's decision, calibrated as it is made: best score over n templates against a threshold for n.

A desk compares one press with every template the card allows (the holder's presses and fingers,
valid delegates' ones) and accepts on the best score. An impostor is falsely accepted when any of
the n comparisons reaches the threshold, so a threshold fitted per comparison promises too little:
P(best of n >= t) <= n * FMR1(t), whatever the dependence between the comparisons (union bound).

Model: above the score where one impostor comparison in a hundred scores higher, the per-comparison
false-match rate falls exponentially, FMR1(t) = FMR1(t_a) * exp(-(t - t_a) / TAIL_SCALE). Then the
threshold at which n comparisons together keep the named rate a is

    decision_threshold(point, n) = THRESHOLDS[point] + TAIL_SCALE * ln(n)

(the per-comparison threshold at a / n): more templates never loosen the promise, and for n = 1 it
is THRESHOLDS[point]. `fit` computes both from impostor comparison scores; `fpverify bench calibrate`
runs it on the FVC sets and checks it, leaving one FVC year out (docs/matcher.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_POINT = re.compile(r"^fmr_(1e-\d+)$")


def point_rate(point: str) -> float:
    """The false-match rate an operating point is named after ("fmr_1e-4" -> 1e-4)."""
    m = _POINT.match(point)
    if not m:
        raise ValueError(f"not an operating point name: {point!r} (fmr_1e-N expected)")
    return float(m.group(1))


def threshold_for(base: float, tail_scale: float, n: int) -> float:
    """Threshold of a best-of-n decision from the one-comparison threshold `base` (module docstring)."""
    if n < 1:
        raise ValueError(f"a decision compares at least one template, not {n}")
    return float(base + tail_scale * math.log(n))


def empirical_threshold(impostor: np.ndarray, rate: float) -> float:
    """Smallest score at which at most `rate` of these impostor scores are accepted (score >= t)."""
    s = np.sort(np.asarray(impostor, np.float64))[::-1]
    if len(s) == 0:
        raise ValueError("no impostor scores")
    allowed = int(np.floor(rate * len(s) + 1e-9))
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))


def _tail(scores: np.ndarray, tail_from: float) -> tuple[float, float]:
    """(u, scale): the `tail_from` quantile and the exponential scale (MLE) of the scores above it."""
    u = empirical_threshold(scores, tail_from)
    over = scores[scores >= u] - u
    if len(over) < 10:
        raise ValueError(f"{len(over)} impostor scores above the tail start: too few to fit (need 10)")
    return u, float(over.mean())


def fit(
    impostor_by_sensor: Sequence[np.ndarray], points: Sequence[str], tail_from: float = 1e-2, shifted: bool = False
) -> tuple[dict[str, float], float]:
    """(THRESHOLDS, TAIL_SCALE) from one-comparison impostor scores, one array per sensor (FVC set).

    The tail starts at the pooled `tail_from` quantile; TAIL_SCALE is the heaviest of the sensors'
    exponential tails (and the pooled one): pooled, one sensor's heavy tail hides among the light
    ones, and the promise must hold on a sensor like it (fitted on two FVC years only, the pooled
    scale failed on the third). With `shifted`, a sensor's tail also counts by its mean excess above
    the pooled start (at least 10 scores there), which is larger where its impostors sit higher than
    the pool's, not only spread wider. The cohort-normalised fit needs it: with the quality-weighted
    pairing its FVC2000 decisions failed fmr_1e-3 held out without it. The raw fit passes without it,
    and there the larger scale would cost the fallback decision and, multiplied by ln(n) for n in the
    millions, the registry's duplicate check (docs/matcher.md). Each point's threshold is the larger
    of the model's and the pooled empirical quantile: the model reaches rates the sample cannot
    resolve (fewer than 10 / rate scores), and where the tail is heavier than the model the data wins.
    """
    sensors = [np.asarray(s, np.float64) for s in impostor_by_sensor]
    pooled = np.concatenate(sensors)
    u, scale = _tail(pooled, tail_from)
    scale = max([scale, *(_tail(s, tail_from)[1] for s in sensors)])
    if shifted:
        above = [s[s >= u] - u for s in sensors]
        scale = max([scale, *(float(a.mean()) for a in above if len(a) >= 10)])
    out = {}
    for p in points:
        a = point_rate(p)
        emp = empirical_threshold(pooled, a)
        out[p] = float(max(u + scale * math.log(tail_from / a), emp)) if a <= tail_from else emp
    return out, scale


# -- impostor-cohort normalisation (issue 17): an enrolled template's score scale, measured at enrollment
#
# Templates differ in how high impostors score against them (many minutiae, a large area: higher).
# Each enrolled template carries the mean and standard deviation of its scores against an impostor
# cohort (presses of other fingers, compared with it as probes), and the station decides on
# (score - mean) / sd: one threshold then means the same false-match rate for every template, and the
# tail model above (fit, threshold_for) is fitted on normalised scores. Held out on the FVC sets
# (cohort: the other FVC years' presses), FNMR after one retry at fmr_1e-4 went from 5.2 to 2.3 %
# (docs/matcher.md). The cohort must not hold the template's own finger.

MIN_COHORT = 300  # cohort scores a template needs: 160 left the sd noisy (FNMR 9.0 % at fmr_1e-4, 7.8 with 320+)

# Thresholds on the normalised scale (units of the template's cohort sd) and their tail scale, fitted
# by `fpverify bench calibrate --condition sensor --cohort other-years` (each template normalised by
# the 640 presses of the two other FVC years; tail scale from the heaviest set, its excess above the
# pooled start counted: fit(shifted=True)); rounded up. Refitted 2026-12-07 for the weighted pairing.
COHORT_THRESHOLDS: dict[str, float] = {
    "fmr_1e-2": 2.8706,
    "fmr_1e-3": 4.4540,
    "fmr_1e-4": 6.0374,
}
COHORT_TAIL_SCALE = 0.6877


@dataclass(frozen=True)
class Cohort:
    """Impostor-cohort statistics of one enrolled template: its score scale."""

    mean: float
    sd: float
    n: int

    def normalise(self, score: float) -> float:
        return (float(score) - self.mean) / self.sd


def cohort_of(scores: Sequence[float] | np.ndarray, minimum: int = MIN_COHORT) -> Cohort:
    """The Cohort of a template from its scores against the cohort's presses (probe = cohort press)."""
    s = np.asarray(scores, np.float64).ravel()
    if len(s) < minimum:
        raise ValueError(f"{len(s)} cohort scores: too few to normalise a template (need {minimum})")
    sd = float(s.std())
    if not np.isfinite(sd) or sd <= 1e-9:  # equal scores (rounding leaves ~1e-17)
        raise ValueError("cohort scores without spread: cannot normalise a template")
    return Cohort(float(s.mean()), sd, len(s))


def cohort_threshold(point: str, n: int) -> float:
    """Normalised-score threshold of a best-of-n decision at `point` (COHORT_THRESHOLDS, best of n)."""
    point_rate(point)
    if point not in COHORT_THRESHOLDS:
        raise ValueError(f"unknown operating point {point!r}; one of {', '.join(sorted(COHORT_THRESHOLDS))}")
    return threshold_for(COHORT_THRESHOLDS[point], COHORT_TAIL_SCALE, n)
