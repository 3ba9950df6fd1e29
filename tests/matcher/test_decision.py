"""The calibrated decision: a best-of-n threshold that keeps the operating point's rate for every n."""

from __future__ import annotations

import numpy as np
import pytest

from fpverify import matcher
from fpverify.matcher import decision

POINTS = ("fmr_1e-2", "fmr_1e-3", "fmr_1e-4")


def _impostor_scores(rng: np.random.Generator, shape) -> np.ndarray:
    """Scores shaped like the matcher's impostors: a bulk near 0.07 and a tail lighter than exponential."""
    return rng.gamma(6.0, 0.012, size=shape)


def test_more_templates_never_lower_the_threshold():
    for p in POINTS:
        ts = [matcher.decision_threshold(p, n) for n in range(1, 40)]
        assert ts[0] == matcher.THRESHOLDS[p]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False)), p
    assert matcher.best_of_n(0.2, 1) == 0.2 and matcher.best_of_n(0.2, 6) > matcher.best_of_n(0.2, 3) > 0.2
    with pytest.raises(ValueError, match="at least one template"):
        matcher.decision_threshold("fmr_1e-4", 0)
    with pytest.raises(ValueError, match="unknown operating point"):
        matcher.decision_threshold("fmr_1e-9", 3)


def test_shipped_calibration_is_ordered():
    t = [matcher.THRESHOLDS[p] for p in POINTS]
    assert 0 < t[0] < t[1] < t[2] < 1 and 0 < matcher.TAIL_SCALE < 0.1


def test_the_shipped_thresholds_belong_to_the_shipped_network():
    """Replacing the network without refitting the thresholds would silently change every promised
    rate (a retrained network's impostor tail is heavier): the two change together or CI fails."""
    import hashlib
    from importlib import resources

    from fpverify.matcher import learned

    model = resources.files("fpverify.matcher.models").joinpath(learned.SHIPPED).read_bytes()
    assert hashlib.sha256(model).hexdigest() == matcher.THRESHOLDS_MODEL_SHA256, (
        "the shipped minutia network changed: refit matcher.THRESHOLDS / decision.COHORT_THRESHOLDS on its "
        "templates (fpverify bench calibrate, docs/matcher.md), then update THRESHOLDS_MODEL_SHA256"
    )


@pytest.mark.parametrize("correlated", [False, True])
def test_fitted_threshold_keeps_the_rate_for_every_template_count(correlated):
    """Fit on one-comparison impostors, then decide best-of-n on fresh ones: FMR stays within the rate.

    Independent scores are the worst case for the union bound; correlated ones (the presses of one
    finger) are the station's usual case. Without the correction the rate grows with n: the test
    would see it.
    """
    rng = np.random.default_rng(17)

    def cards(decisions: int, n: int) -> np.ndarray:
        if not correlated:
            return _impostor_scores(rng, (decisions, n))
        # each card's templates share half of the impostor's score (the same marginal as the fit's)
        return 0.5 * _impostor_scores(rng, (decisions, n)) + 0.5 * _impostor_scores(rng, (decisions, 1))

    thresholds, scale = decision.fit([cards(200_000, 1).ravel(), cards(200_000, 1).ravel()], ["fmr_1e-2"])
    base = thresholds["fmr_1e-2"]
    for n in (1, 3, 6, 12, 30):
        scores = cards(40_000, n)
        best = scores.max(axis=1)
        fmr = float(np.mean(best >= decision.threshold_for(base, scale, n)))
        assert fmr <= 1e-2 * 1.15, (n, fmr)  # binomial noise at 400 expected events is about 5 %
        if n >= 6 and not correlated:
            assert float(np.mean(best >= base)) > 4e-2  # the uncorrected threshold breaks its promise


def test_fit_uses_the_data_where_it_resolves_the_rate_and_the_model_beyond():
    rng = np.random.default_rng(3)
    s = _impostor_scores(rng, 200_000)
    t, scale = decision.fit([s], POINTS)
    assert t["fmr_1e-2"] == decision.empirical_threshold(s, 1e-2)
    assert t["fmr_1e-3"] >= decision.empirical_threshold(s, 1e-3)
    assert t["fmr_1e-2"] < t["fmr_1e-3"] < t["fmr_1e-4"]
    assert np.mean(s >= t["fmr_1e-3"]) <= 1e-3
    with pytest.raises(ValueError, match="too few"):
        decision.fit([s[:500]], POINTS)
    # a sensor with a heavier tail sets the scale: the thresholds beyond the data rise with it
    heavy = 0.05 + rng.gamma(3.0, 0.03, size=20_000)
    t2, scale2 = decision.fit([s, heavy], POINTS)
    assert scale2 > scale and t2["fmr_1e-4"] > t["fmr_1e-4"]
    with pytest.raises(ValueError, match="operating point name"):
        decision.point_rate("strict")


def test_a_sensor_whose_impostors_sit_higher_raises_the_tail_scale():
    """Two sensors with the same tail shape, one shifted up: its own-start scale does not show the
    shift, its mean excess above the pooled start does, and the thresholds beyond the data rise."""
    rng = np.random.default_rng(29)
    light = _impostor_scores(rng, 400_000)
    shifted = _impostor_scores(rng, 100_000) + 0.03
    t, scale = decision.fit([light, shifted], POINTS, shifted=True)
    t0, scale0 = decision.fit([light, shifted], POINTS)  # the raw fit's rule: own-start scales only
    u, pooled_scale = decision._tail(np.concatenate([light, shifted]), 1e-2)
    own = max(pooled_scale, *(decision._tail(x, 1e-2)[1] for x in (light, shifted)))
    assert scale == pytest.approx(float((shifted[shifted >= u] - u).mean())) and scale > own == scale0
    assert t["fmr_1e-4"] == pytest.approx(u + scale * np.log(100)) and t["fmr_1e-4"] > u + own * np.log(100)
    fresh = _impostor_scores(rng, 2_000_000) + 0.03  # the shifted sensor's rate beyond the data: lower
    assert np.mean(fresh >= t["fmr_1e-4"]) < np.mean(fresh >= u + own * np.log(100))
