"""Verification error rates (FVC definitions). A pair is accepted when score >= threshold."""

from __future__ import annotations

import numpy as np


def _curves(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (every distinct score, plus one above all) with FMR(t) and FNMR(t)."""
    g = np.sort(np.asarray(genuine, np.float64))
    i = np.sort(np.asarray(impostor, np.float64))
    if len(g) == 0 or len(i) == 0:
        raise ValueError("need at least one genuine and one impostor score")
    t = np.unique(np.concatenate([g, i]))
    t = np.append(t, np.nextafter(t[-1], np.inf))
    fmr = (len(i) - np.searchsorted(i, t, side="left")) / len(i)  # impostors >= t
    fnmr = np.searchsorted(g, t, side="left") / len(g)  # genuines < t
    return t, fmr, fnmr


def eer(genuine, impostor) -> float:
    """Equal error rate as FVC defines it: the middle of [EER_low, EER_high]."""
    _, fmr, fnmr = _curves(genuine, impostor)
    # fmr falls and fnmr rises with t: t1 is the last point with fnmr <= fmr, t2 the first with fnmr >= fmr.
    below = np.flatnonzero(fnmr <= fmr)
    above = np.flatnonzero(fnmr >= fmr)
    i1, i2 = below[-1], above[0]
    if fmr[i1] + fnmr[i1] <= fmr[i2] + fnmr[i2]:
        lo, hi = fnmr[i1], fmr[i1]
    else:
        lo, hi = fmr[i2], fnmr[i2]
    return float((lo + hi) / 2.0)


def fnmr_at_fmr(genuine, impostor, fmr_max: float) -> float:
    """Lowest FNMR over thresholds where FMR <= fmr_max (FMR100: 0.01, FMR1000: 0.001, ZeroFMR: 0)."""
    _, fmr, fnmr = _curves(genuine, impostor)
    ok = fmr <= fmr_max + 1e-12
    return float(fnmr[ok].min())


def rates(genuine, impostor) -> dict[str, float]:
    return {
        "EER": eer(genuine, impostor),
        "FMR100": fnmr_at_fmr(genuine, impostor, 0.01),
        "FMR1000": fnmr_at_fmr(genuine, impostor, 0.001),
        "ZeroFMR": fnmr_at_fmr(genuine, impostor, 0.0),
    }


def threshold_at_fmr(impostor, fmr: float) -> float:
    """Smallest threshold whose false-match rate on these impostor scores is <= fmr."""
    from fpverify.matcher.decision import empirical_threshold

    return empirical_threshold(impostor, fmr)


def det_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) along all thresholds, for a DET plot."""
    _, fmr, fnmr = _curves(genuine, impostor)
    return fmr, fnmr


def upper95(k: int, n: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound of a rate seen k times in n trials."""
    if n == 0 or k >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(0.95, k + 1, n - k))
