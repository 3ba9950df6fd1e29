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
    impostor_by_sensor: Sequence[np.ndarray], points: Sequence[str], tail_from: float = 1e-2
) -> tuple[dict[str, float], float]:
    """(THRESHOLDS, TAIL_SCALE) from one-comparison impostor scores, one array per sensor (FVC set).

    The tail starts at the pooled `tail_from` quantile; TAIL_SCALE is the heaviest of the sensors'
    exponential tails (and the pooled one): pooled, one sensor's heavy tail hides among the light
    ones, and the promise must hold on a sensor like it (fitted on two FVC years only, the pooled
    scale failed on the third). Each point's threshold is the larger of the model's and the pooled
    empirical quantile: the model reaches rates the sample cannot resolve (fewer than 10 / rate
    scores), and where the tail is heavier than the model the data wins.
    """
    sensors = [np.asarray(s, np.float64) for s in impostor_by_sensor]
    pooled = np.concatenate(sensors)
    u, scale = _tail(pooled, tail_from)
    scale = max([scale, *(_tail(s, tail_from)[1] for s in sensors)])
    out = {}
    for p in points:
        a = point_rate(p)
        emp = empirical_threshold(pooled, a)
        out[p] = float(max(u + scale * math.log(tail_from / a), emp)) if a <= tail_from else emp
    return out, scale
