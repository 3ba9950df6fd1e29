"""fpverify matcher: fingerprint image -> Template -> similarity score; 1:N search.

Public API (stable; the station and the registry call only this):
    extract(image, dpi=500) -> Template
    compare(probe, candidate) -> float        similarity in [0, 1], higher = more alike
    Template.to_bytes() / Template.from_bytes(b)
    Template.to_iso19794_2() / Template.from_iso19794_2(b)
    quality(image, dpi=500) -> QualityReport  (.score 0-100, .reasons)
    Gallery, search(probe, gallery, top_k) -> list[(key, score)]
    THRESHOLDS: score at a false-match rate, e.g. THRESHOLDS["fmr_1e-4"]

Pure computation on numpy arrays: no I/O, no logging of biometric data.
"""

from __future__ import annotations

import numpy as np

from matcher.features import extract_features
from matcher.gallery import Gallery, search
from matcher.matching import compare
from matcher.params import MatchParams
from matcher.quality import QualityReport
from matcher.quality import quality as _quality
from matcher.template import Template

# Decision thresholds on the `compare` scale: the score an impostor pair exceeds with probability
# (false-match rate) 1e-2, 1e-3, 1e-4. Measured by `fpverify bench accuracy` on the 12 FVC sets,
# pooled over all their all-pairs impostor comparisons (12 x 2880 = 34,560; the 1e-4 point is
# therefore resolved by only ~3 impostor scores). See docs/matcher.md for the table and run.
THRESHOLDS: dict[str, float] = {
    "fmr_1e-2": 0.0754,
    "fmr_1e-3": 0.0951,
    "fmr_1e-4": 0.1135,
}

__all__ = [
    "THRESHOLDS",
    "Gallery",
    "MatchParams",
    "QualityReport",
    "Template",
    "compare",
    "extract",
    "quality",
    "search",
]


def extract(image: np.ndarray, dpi: int = 500, params: MatchParams | None = None) -> Template:
    """Template of a greyscale uint8 HxW image; ValueError on unusable input."""
    f = extract_features(image, dpi=dpi)
    return Template(f.minutiae, f.shape, mask=f.mask, mask_block=f.mask_block, dpi=int(dpi), params=params)


# The submodule matcher.quality is imported eagerly above: a lazy import inside this function would
# rebind the package attribute `quality` to the submodule on first call and break the second call.
def quality(image: np.ndarray, dpi: int = 500) -> QualityReport:
    """QualityReport (score 0-100, reasons) for asking the holder to press again."""
    return _quality(image, dpi=dpi)
