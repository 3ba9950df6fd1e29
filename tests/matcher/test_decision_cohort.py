"""Cohort-normalised decisions: one normalised threshold keeps the rate for every template and count."""

from __future__ import annotations

import numpy as np
import pytest

from fpverify.matcher import decision

POINTS = ("fmr_1e-2", "fmr_1e-3", "fmr_1e-4")


def _population(rng: np.random.Generator, templates: int):
    """Per template: where its impostors score (location, spread) differs, as with many or few minutiae."""
    loc = rng.uniform(0.03, 0.09, templates)
    spread = rng.uniform(0.6, 1.6, templates)
    return loc, spread


def _impostors(rng, loc, spread, per_template: int) -> np.ndarray:
    """(templates, per_template) impostor scores: a gamma bulk shifted and stretched per template."""
    return loc[:, None] + spread[:, None] * rng.gamma(6.0, 0.008, (len(loc), per_template))


def test_cohort_statistics_and_their_refusals():
    z = decision.cohort_of(np.r_[np.zeros(200), np.ones(200)])
    assert (z.mean, z.sd, z.n) == (0.5, 0.5, 400)
    assert z.normalise(1.5) == 2.0 and z.normalise(0.5) == 0.0
    with pytest.raises(ValueError, match="too few"):
        decision.cohort_of(np.arange(decision.MIN_COHORT - 1.0))
    with pytest.raises(ValueError, match="without spread"):
        decision.cohort_of(np.full(decision.MIN_COHORT, 0.1))
    assert decision.cohort_of(np.arange(12.0), minimum=10).n == 12


def test_more_templates_never_lower_the_normalised_threshold():
    for p in POINTS:
        ts = [decision.cohort_threshold(p, n) for n in range(1, 40)]
        assert ts[0] == decision.COHORT_THRESHOLDS[p]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False)), p
    t = [decision.COHORT_THRESHOLDS[p] for p in POINTS]
    assert 0 < t[0] < t[1] < t[2] and 0 < decision.COHORT_TAIL_SCALE < t[0]
    with pytest.raises(ValueError, match="unknown operating point"):
        decision.cohort_threshold("fmr_1e-9", 3)
    with pytest.raises(ValueError, match="at least one template"):
        decision.cohort_threshold("fmr_1e-4", 0)


def test_normalised_fit_keeps_the_rate_on_fresh_templates_for_every_count():
    """Fit on one set of templates' normalised impostors; decide best-of-n for new templates, each
    normalised by its own cohort (400 scores, as at enrollment): FMR within the rate for every n.
    The raw decision at the same rate rejects more genuine presses: its threshold is set by the
    templates that impostors score highest against."""
    rng = np.random.default_rng(11)
    loc, spread = _population(rng, 2000)
    cohorts = [decision.cohort_of(c) for c in _impostors(rng, loc, spread, 400)]
    mean = np.array([z.mean for z in cohorts])
    sd = np.array([z.sd for z in cohorts])
    train = (_impostors(rng, loc, spread, 100) - mean[:, None]) / sd[:, None]
    base, scale = decision.fit([train[:1000].ravel(), train[1000:].ravel()], ["fmr_1e-2"])
    raw_base, raw_scale = decision.fit([_impostors(rng, loc, spread, 100).ravel()], ["fmr_1e-2"])
    genuine = rng.normal(0.25, 0.06, 2000)  # a genuine score does not follow its template's impostors
    for n in (1, 3, 6, 12):
        cards = rng.integers(0, 2000, (20_000, n))  # n templates a card, drawn from the population
        z = (_impostors(rng, loc[cards].ravel(), spread[cards].ravel(), 1).reshape(cards.shape) - mean[cards]) / sd[
            cards
        ]
        fmr = float(np.mean(z.max(axis=1) >= decision.threshold_for(base["fmr_1e-2"], scale, n)))
        assert fmr <= 1e-2 * 1.2, (n, fmr)
    t_norm = decision.threshold_for(base["fmr_1e-2"], scale, 3)
    t_raw = decision.threshold_for(raw_base["fmr_1e-2"], raw_scale, 3)
    fnmr_norm = float(np.mean((genuine - mean) / sd < t_norm))
    fnmr_raw = float(np.mean(genuine < t_raw))
    assert fnmr_norm < fnmr_raw, (fnmr_norm, fnmr_raw)
