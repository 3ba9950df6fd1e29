"""Capture quality: a 0-100 score and the reasons a capture should be retaken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpverify.matcher.features import extract_features
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.validate import check_structure, is_blank, to_target_dpi

SMALL_AREA = "small_area"
LOW_CONTRAST = "low_contrast"
FEW_MINUTIAE = "few_minutiae"
LOW_CLARITY = "low_clarity"
NO_FINGER = "no_finger"


@dataclass(frozen=True)
class QualityReport:
    score: int  # 0 (unusable) .. 100
    reasons: tuple[str, ...]  # empty when nothing is wrong
    minutiae: int
    area_fraction: float  # finger share of the image
    contrast: float  # (95th - 5th percentile grey level) / 255 on the finger


def _ramp(value: float, low: float, good: float) -> float:
    """0 at or below ``low`` / 2, 1 at ``good``, linear between."""
    lo = low / 2
    return float(np.clip((value - lo) / max(good - lo, 1e-9), 0.0, 1.0))


def quality(image: np.ndarray, dpi: int = 500, params: ExtractionParams | None = None) -> QualityReport:
    """Assess a capture. Raises ValueError for malformed input (like extract_features);
    a blank frame (no finger) is a valid capture and scores 0 with reason "no_finger"."""
    params = params or ExtractionParams()
    img = check_structure(image, dpi, params)
    if is_blank(img, params):
        return QualityReport(0, (NO_FINGER,), 0, 0.0, 0.0)
    feats = extract_features(img, dpi, params)
    if not feats.mask.any():
        return QualityReport(0, (NO_FINGER,), 0, 0.0, 0.0)

    b = feats.mask_block
    pixels = np.repeat(np.repeat(feats.mask, b, axis=0), b, axis=1)
    area_px = int(pixels.sum())
    area_fraction = area_px / float(feats.shape[0] * feats.shape[1])
    norm = to_target_dpi(img, dpi, params)[: pixels.shape[0], : pixels.shape[1]]
    p5, p95 = np.percentile(norm[pixels], (5, 95))
    contrast = float(p95 - p5) / 255.0
    n = int(feats.minutiae.shape[0])
    clarity = float(feats.minutiae[:, 3].mean()) if n else 0.0

    reasons = []
    if area_px < params.quality_min_area_px:
        reasons.append(SMALL_AREA)
    if contrast < params.quality_min_contrast:
        reasons.append(LOW_CONTRAST)
    if n < params.quality_min_minutiae:
        reasons.append(FEW_MINUTIAE)
    if n and clarity < params.quality_min_clarity:
        reasons.append(LOW_CLARITY)

    terms = (
        _ramp(area_px, params.quality_min_area_px, params.quality_good_area_px),
        _ramp(contrast, params.quality_min_contrast, params.quality_good_contrast),
        _ramp(n, params.quality_min_minutiae, params.quality_good_minutiae),
        _ramp(clarity, params.quality_min_clarity, 0.6),
    )
    score = 100.0 * float(np.prod(terms)) ** (1 / len(terms))  # geometric mean: any zero term -> 0
    if reasons:
        score = min(score, 39.0)  # a capture with a reason to retake never looks "good"
    return QualityReport(int(round(score)), tuple(reasons), n, round(area_fraction, 4), round(contrast, 4))
