"""fpverify matcher: fingerprint image -> Template -> similarity score; 1:N search.

Public API (stable; the station and the registry call only this):
    extract(image, dpi=500) -> Template
    compare(probe, candidate) -> float        similarity in [0, 1], higher = more alike
    Template.to_bytes() / Template.from_bytes(b)
    Template.to_iso19794_2() / Template.from_iso19794_2(b)
    quality(image, dpi=500) -> QualityReport  (.score 0-100, .reasons)
    Gallery, search(probe, gallery, top_k) -> list[(key, score)]
    THRESHOLDS: score at a false-match rate for one comparison, e.g. THRESHOLDS["fmr_1e-4"]
    decision_threshold(point, n) -> float     the same promise for a best-of-n decision (the station's)
    best_of_n(threshold, n) -> float          a one-comparison threshold raised for a best-of-n decision
    warm_up()                                 compile the comparison kernels before the first user
    Cohort, cohort_of(scores) -> Cohort       a template's impostor-cohort statistics (mean, sd; >= 300 scores)
    cohort_threshold(point, n) -> float       normalised-score threshold of a best-of-n decision

Pure computation on numpy arrays: no I/O, no logging of biometric data.
"""

from __future__ import annotations

import numpy as np

from fpverify.matcher import decision as _decision
from fpverify.matcher.decision import Cohort, cohort_of, cohort_threshold
from fpverify.matcher.features import extract_features
from fpverify.matcher.gallery import Gallery, search
from fpverify.matcher.matching import compare
from fpverify.matcher.params import ExtractionParams, MatchParams
from fpverify.matcher.quality import QualityReport
from fpverify.matcher.quality import quality as _quality
from fpverify.matcher.template import Template

# Decision thresholds on the `compare` scale: the score one impostor comparison reaches with
# probability (false-match rate) 1e-2, 1e-3, 1e-4, and the scale of the impostors' exponential tail
# that raises them for a decision over n templates (decision_threshold; matcher/decision.py).
# Fitted by `fpverify bench calibrate --condition sensor` (the images a station sends) and `--condition
# native`, each on the 12 FVC sets' 69,120 same-set impostor comparisons, the tail scale from the
# heaviest set; each value the larger of the two fits', rounded up, so every threshold is at or above
# both fits' at every n (sensor 0.0926 / 0.1186 / 0.1446, scale 0.01129; native 0.0908 / 0.1212 /
# 0.1516, scale 0.01321). Checked leaving one FVC year out (docs/matcher.md). Refitted 2026-12-07
# (fourth session) for the quality-weighted, residual-weighted pairing.
THRESHOLDS: dict[str, float] = {
    "fmr_1e-2": 0.0927,
    "fmr_1e-3": 0.1213,
    "fmr_1e-4": 0.1517,
}
TAIL_SCALE = 0.0133
# The network whose templates these thresholds (and decision.COHORT_THRESHOLDS) were fitted on: sha256
# of models/minutiae-student-int8.onnx. Networks of the same recipe trained again have a heavier
# impostor tail (held out, raw fit at fmr_1e-4 0.1691 against 0.1517: docs/matcher.md, seventh
# session), so a new network ships only with thresholds fitted on its own templates; a test fails
# until both change together.
THRESHOLDS_MODEL_SHA256 = "b4d11abc87f256c8220efa4ca0d57e793695688deaaa97523b25046b6470c595"


def decision_threshold(point: str, n: int) -> float:
    """Threshold of the station's decision at `point` when the best of `n` template scores is taken.

    THRESHOLDS[point] + TAIL_SCALE * ln(n): the per-comparison threshold at the point's rate / n, so
    that n comparisons together keep the rate (matcher/decision.py). Never lower for a larger n.
    """
    return best_of_n(THRESHOLDS[known_point(point)], n)


def known_point(point: str) -> str:
    """`point` if it is a key of THRESHOLDS; else a ValueError naming the keys (what configs check)."""
    if point not in THRESHOLDS:
        raise ValueError(f"unknown operating point {point!r}; one of {', '.join(sorted(THRESHOLDS))}")
    return point


def best_of_n(threshold: float, n: int) -> float:
    """A one-comparison threshold (a THRESHOLDS value or a configured score) for a best-of-n decision."""
    return _decision.threshold_for(float(threshold), TAIL_SCALE, n)

__all__ = [
    "TAIL_SCALE",
    "THRESHOLDS",
    "best_of_n",
    "Cohort",
    "cohort_of",
    "cohort_threshold",
    "ExtractionParams",
    "Gallery",
    "MatchParams",
    "QualityReport",
    "Template",
    "compare",
    "decision_threshold",
    "extract",
    "known_point",
    "quality",
    "search",
    "warm_up",
]


def extract(
    image: np.ndarray,
    dpi: int = 500,
    params: MatchParams | None = None,
    extraction: ExtractionParams | None = None,
) -> Template:
    """Template of a greyscale uint8 HxW image; ValueError on unusable input.

    `extraction` picks the minutia detector and its model (default: the learned one shipped).
    """
    f = extract_features(image, dpi=dpi, params=extraction)
    return Template(f.minutiae, f.shape, mask=f.mask, mask_block=f.mask_block, dpi=int(dpi), params=params)


# The submodule matcher.quality is imported eagerly above: a lazy import inside this function would
# rebind the package attribute `quality` to the submodule on first call and break the second call.
def quality(image: np.ndarray, dpi: int = 500) -> QualityReport:
    """QualityReport (score 0-100, reasons) for asking the holder to press again."""
    return _quality(image, dpi=dpi)


def warm_up() -> None:
    """Compile the comparison kernels now rather than on the first compare.

    They are compiled once per machine (a few seconds) and cached on disk by numba; later processes
    load them in well under a second. The minutia network is loaded too. A station calls this at
    start, before the first patient.
    """
    grid = np.stack(np.meshgrid(np.arange(40, 200, 30), np.arange(40, 200, 30)), -1).reshape(-1, 2)
    m = np.zeros((len(grid), 5))
    m[:, :2] = grid
    m[:, 2] = np.arange(len(grid)) * 0.7 % (2 * np.pi)
    m[:, 3] = 1.0
    m[:, 4] = 1
    t = Template(m, (240, 240))
    compare(t, t)
    from fpverify.matcher import learned

    learned.model_metadata()  # loads the minutia network (onnxruntime session) once
