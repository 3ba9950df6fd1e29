"""Contrast normalisation: zero local mean, unit local standard deviation."""

from __future__ import annotations

import cv2
import numpy as np

from matcher.params import ExtractionParams


def normalise_contrast(image: np.ndarray, params: ExtractionParams) -> np.ndarray:
    """Return float32 image with local mean 0 and local std ~1, clipped to [-3, 3].

    A floor on the local variance keeps flat background from being blown up into ridges.
    """
    f = image.astype(np.float32)
    s = params.norm_sigma
    mean = cv2.GaussianBlur(f, (0, 0), s)
    d = f - mean
    var = cv2.GaussianBlur(d * d, (0, 0), s)
    out = d / np.sqrt(var + 16.0)
    return np.clip(out, -3.0, 3.0, out=out)


def to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] to 0..255 (for the debug hook)."""
    scaled = (np.nan_to_num(values.astype(np.float32), nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)
