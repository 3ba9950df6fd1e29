"""fpverify matcher: fingerprint image -> Template -> similarity score; 1:N search.

Public API (stable; the station and the registry call only this):
    extract(image, dpi=500) -> Template
    compare(probe, candidate) -> float        similarity in [0, 1], higher = more alike
    Template.to_bytes() / Template.from_bytes(b)
    Template.to_iso19794_2() / Template.from_iso19794_2(b)
    quality(image, dpi=500) -> QualityReport  (.score 0-100, .reasons)
    Gallery, search(probe, gallery, top_k) -> list[(key, score)]
    THRESHOLDS: score at a false-match rate, e.g. THRESHOLDS["fmr_1e-4"]
    warm_up()                                 compile the comparison kernels before the first user

Pure computation on numpy arrays: no I/O, no logging of biometric data.
"""

from __future__ import annotations

import numpy as np

from fpverify.matcher.features import extract_features
from fpverify.matcher.gallery import Gallery, search
from fpverify.matcher.matching import compare
from fpverify.matcher.params import ExtractionParams, MatchParams
from fpverify.matcher.quality import QualityReport
from fpverify.matcher.quality import quality as _quality
from fpverify.matcher.template import Template

# Decision thresholds on the `compare` scale: the score an impostor pair exceeds with probability
# (false-match rate) 1e-2, 1e-3, 1e-4. Measured by `fpverify bench accuracy` on the 12 FVC sets,
# pooled over all their all-pairs impostor comparisons (12 x 2880 = 34,560; the 1e-4 point is
# therefore resolved by only ~3 impostor scores). See docs/matcher.md for the table and run.
THRESHOLDS: dict[str, float] = {
    "fmr_1e-2": 0.1274,
    "fmr_1e-3": 0.1569,
    "fmr_1e-4": 0.1788,
}

__all__ = [
    "THRESHOLDS",
    "ExtractionParams",
    "Gallery",
    "MatchParams",
    "QualityReport",
    "Template",
    "compare",
    "extract",
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
