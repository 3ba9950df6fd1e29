"""Contrast normalisation: zero local mean, unit local standard deviation."""

from __future__ import annotations

import cv2
import numpy as np

from fpverify.matcher.params import ExtractionParams


def normalise_contrast(image: np.ndarray, params: ExtractionParams) -> np.ndarray:
    """Return float32 image with local mean 0 and local std ~1, clipped to [-3, 3].

    A floor on the local variance keeps flat background from being blown up into ridges.
    """
    f = image.astype(np.float32)
    h, w = f.shape
    # the local statistics are smooth: estimate them at quarter resolution, then upsample
    q = 4
    small = cv2.resize(f, (max(1, w // q), max(1, h // q)), interpolation=cv2.INTER_AREA)
    s = params.norm_sigma / q
    mean_s = cv2.GaussianBlur(small, (0, 0), s)
    sq_s = cv2.GaussianBlur(small * small, (0, 0), s)
    mean = cv2.resize(mean_s, (w, h), interpolation=cv2.INTER_LINEAR)
    var = cv2.resize(np.maximum(sq_s - mean_s * mean_s, 0), (w, h), interpolation=cv2.INTER_LINEAR)
    out = (f - mean) / np.sqrt(var + 16.0)
    return np.clip(out, -3.0, 3.0, out=out)


def to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] to 0..255 (for the debug hook)."""
    scaled = (np.nan_to_num(values.astype(np.float32), nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)
