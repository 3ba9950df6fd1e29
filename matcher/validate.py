"""Input checks and resolution normalisation: every image entering extraction passes here."""

from __future__ import annotations

import cv2
import numpy as np

from fpverify.matcher.params import ExtractionParams


def check_structure(image: object, dpi: object, params: ExtractionParams) -> np.ndarray:
    """Raise ValueError unless ``image`` is a usable 2-D uint8 array at a supported dpi."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)):
        raise ValueError(f"dpi must be an integer, got {dpi!r}")
    if not params.min_dpi <= int(dpi) <= params.max_dpi:
        raise ValueError(f"dpi {dpi} outside the supported range {params.min_dpi}..{params.max_dpi}")
    if image.size == 0:
        raise ValueError("image is empty")
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D greyscale (H, W), got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 greyscale, got dtype {image.dtype}")
    scale = params.target_dpi / int(dpi)
    h, w = (round(s * scale) for s in image.shape)
    if min(h, w) < params.min_side:
        raise ValueError(
            f"image too small: {image.shape[1]}x{image.shape[0]} px at {dpi} dpi is {w}x{h} at "
            f"{params.target_dpi} dpi, need at least {params.min_side} px a side"
        )
    if max(h, w) > params.max_side:
        raise ValueError(
            f"image too large: {w}x{h} px at {params.target_dpi} dpi, at most {params.max_side} px a side"
        )
    return image


def is_blank(image: np.ndarray, params: ExtractionParams) -> bool:
    """True when the image has (almost) no grey-level variation: no finger on the sensor."""
    sample = image[:: max(1, image.shape[0] // 128), :: max(1, image.shape[1] // 128)]
    lo, hi = np.percentile(sample, (1, 99))
    return bool(hi - lo < params.min_dynamic_range)


def validate_image(image: object, dpi: object, params: ExtractionParams) -> np.ndarray:
    """Structure checks plus the content check (a constant image is rejected)."""
    img = check_structure(image, dpi, params)
    if is_blank(img, params):
        raise ValueError("image is (nearly) constant: no fingerprint on it")
    return img


def to_target_dpi(image: np.ndarray, dpi: int, params: ExtractionParams) -> np.ndarray:
    """Resize to the working resolution so all lengths in ExtractionParams mean the same."""
    if int(dpi) == params.target_dpi:
        return np.ascontiguousarray(image)
    scale = params.target_dpi / int(dpi)
    h, w = (round(s * scale) for s in image.shape)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)
