from __future__ import annotations

import numpy as np
import pytest

from fpverify.bench import metrics


def test_separable_lists_have_zero_error():
    r = metrics.rates([0.8, 0.9, 0.7], [0.1, 0.2, 0.3, 0.0])
    assert r == {"EER": 0.0, "FMR100": 0.0, "FMR1000": 0.0, "ZeroFMR": 0.0}


def test_identical_distributions_have_eer_one_half():
    s = np.arange(100) / 100
    assert metrics.eer(s, s) == pytest.approx(0.5, abs=0.01)


def test_known_eer_by_hand():
    # genuine 0.1 and impostor 0.9 are each one error in ten: at any threshold between 0.2 and 0.8
    # FMR = FNMR = 10 %.
    gen = [0.1] + [0.8 + 0.01 * i for i in range(9)]
    imp = [0.9] + [0.01 * i for i in range(9)]
    assert metrics.eer(gen, imp) == pytest.approx(0.1)
    r = metrics.rates(gen, imp)
    assert r["FMR100"] == pytest.approx(1.0)  # FMR <= 1 %: threshold above 0.9 rejects every genuine
    assert r["ZeroFMR"] == pytest.approx(1.0)


def test_fnmr_at_fmr_points():
    imp = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    gen = np.array([0.9955, 0.9995, 2.0, 3.0])
    # FMR <= 1 %: threshold just above 0.989 -> every genuine accepted.
    assert metrics.fnmr_at_fmr(gen, imp, 0.01) == 0.0
    # FMR <= 0.1 %: threshold just above 0.998 -> 0.9955 rejected.
    assert metrics.fnmr_at_fmr(gen, imp, 0.001) == pytest.approx(0.25)
    # FMR = 0: threshold above 0.999 -> 0.9955 rejected, 0.9995 accepted.
    assert metrics.fnmr_at_fmr(gen, imp, 0.0) == pytest.approx(0.25)


def test_threshold_at_fmr():
    imp = np.arange(1000) / 1000.0
    t = metrics.threshold_at_fmr(imp, 0.01)
    assert np.mean(imp >= t) <= 0.01
    assert np.mean(imp >= np.nextafter(t, -1)) > 0.0
    assert metrics.threshold_at_fmr(imp, 0.0) > imp.max()


def test_ties_count_as_accepted_and_errors():
    # Every score equal: no threshold separates them; EER is one half.
    assert metrics.eer([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.eer([], [0.1])
