# STATUS: usable
"""Minutiae extraction pipeline: image -> Features.

Stages (one module each): validate -> resize to 500 dpi -> normalisation -> segmentation ->
orientation -> frequency -> enhancement (`prepare`) -> minutia detection by the detector object
`ExtractionParams.detector` holds (matcher/detectors.py: skeleton, learned, fused).

Angle convention of the output (ISO 19794-2): counter-clockwise from the x axis with image y
pointing down, i.e. angle = atan2(-dy, dx). A ridge ending points into its ridge (away from
the free end); a bifurcation points between its two branches (away from the stem), so the
two kinds agree when pressure turns one into the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from fpverify.matcher.detectors import SHARED_STAGES, Debug, Detector
from fpverify.matcher.enhancement import enhance
from fpverify.matcher.frequency import estimate_period, pixel_period
from fpverify.matcher.normalisation import normalise_contrast, to_uint8
from fpverify.matcher.orientation import (
    estimate_orientation,
    pixel_angles,
    sample_angles,
    sample_grid,
    structure_tensor,
)
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.segmentation import border_distance, refine, ridge_clarity, segment
from fpverify.matcher.validate import to_target_dpi, validate_image


def stages(detector: Detector) -> tuple[str, ...]:
    """Debug images an extraction with this detector writes, in order."""
    return (*SHARED_STAGES, *detector.stages)


@dataclass(frozen=True)
class Features:
    minutiae: np.ndarray  # (N, 5) float32: x, y, angle (ISO, [0, 2pi)), quality [0, 1], type
    mask: np.ndarray  # bool (H // mask_block, W // mask_block)
    mask_block: int
    shape: tuple[int, int]  # (H, W) of the 500-dpi image
    orientation: np.ndarray  # float32 (radians, ISO, [0, pi)) on the mask grid, NaN off-finger
    ridge_period: float  # median ridge period, pixels


def _wrap(angles: np.ndarray, period: float) -> np.ndarray:
    """Angles in [0, period) also after float32 rounding (mod can round up to period)."""
    out = np.mod(angles, period).astype(np.float32)
    out[out >= np.float32(period)] = 0.0
    return out


def _crop_box(mask: np.ndarray, align: int, margin: int) -> tuple[int, int, int, int]:
    """Bounding box of the mask plus a margin, origin aligned to ``align`` pixels."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    y0 = max(0, (int(ys.min()) - margin) // align * align)
    x0 = max(0, (int(xs.min()) - margin) // align * align)
    y1 = min(h, int(ys.max()) + margin + 1)
    x1 = min(w, int(xs.max()) + margin + 1)
    return y0, y1, x0, x1


def _orientation_image(base: np.ndarray, angles: np.ndarray, mask: np.ndarray, block: int) -> np.ndarray:
    """Debug rendering: a short line per finger block over the normalised image."""
    out = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
    half = block * 0.45
    for i, j in zip(*np.nonzero(mask), strict=True):
        cy, cx = i * block + block / 2, j * block + block / 2
        dx, dy = np.cos(angles[i, j]) * half, np.sin(angles[i, j]) * half
        cv2.line(out, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), (0, 0, 255), 1)
    return out


def _minutiae_image(base: np.ndarray, x, y, angle, kind) -> np.ndarray:
    out = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
    for xi, yi, a, k in zip(x, y, angle, kind, strict=True):
        colour = (0, 0, 255) if k == 1 else (255, 0, 0) if k == 2 else (0, 160, 0)
        p = (int(round(xi)), int(round(yi)))
        cv2.circle(out, p, 4, colour, 1)
        cv2.line(out, p, (int(round(xi + 10 * np.cos(a))), int(round(yi + 10 * np.sin(a)))), colour, 1)
    return out


def _empty(shape: tuple[int, int], params: ExtractionParams, blocks: np.ndarray, period: float) -> Features:
    return Features(
        minutiae=np.zeros((0, 5), np.float32),
        mask=blocks,
        mask_block=params.block,
        shape=shape,
        orientation=np.full(blocks.shape, np.nan, np.float32),
        ridge_period=period,
    )


@dataclass(frozen=True)
class Prepared:
    """What every minutia detector works from: the finger's bounding box after enhancement.

    Arrays are crops of the 500-dpi image starting at (y0, x0); `blocks` and `block_angles` cover the
    whole image. `angle_at` / `reliability_at` take crop coordinates.
    """

    norm: np.ndarray  # float32 contrast-normalised crop (about -3..3)
    enhanced: np.ndarray  # float32 Gabor-enhanced crop (ridges negative)
    mask: np.ndarray  # bool pixel mask of the crop
    border: np.ndarray  # float32 distance to the mask's edge (both detectors use it)
    y0: int
    x0: int
    shape: tuple[int, int]  # (H, W) of the 500-dpi image
    blocks: np.ndarray  # bool block mask of the full image
    block_angles: np.ndarray  # radians, image y-down, on the block grid
    period: float
    angle_at: Callable[[np.ndarray, np.ndarray], np.ndarray]
    reliability_at: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def full(self, crop: np.ndarray, fill: float) -> np.ndarray:
        """A crop-sized array placed in a full-image one (debug views)."""
        full = np.full(self.shape, fill, np.float32)
        full[self.y0 : self.y0 + crop.shape[0], self.x0 : self.x0 + crop.shape[1]] = crop
        return full


def prepare(
    image: np.ndarray,
    dpi: int = 500,
    params: ExtractionParams | None = None,
    debug: Debug | None = None,
) -> Prepared | Features:
    """All stages before minutia detection; an empty Features where no finger area is found."""
    params = params or ExtractionParams()
    img = to_target_dpi(validate_image(image, dpi, params), dpi, params)
    shape = (int(img.shape[0]), int(img.shape[1]))
    b = params.block

    norm = normalise_contrast(img, params)
    if debug:
        debug("normalised", to_uint8(norm, -3, 3))
    raw = img.astype(np.float32)
    tensor = structure_tensor(raw, params)
    seg = segment(tensor, raw, params)
    if not seg.pixels.any():
        if debug:
            debug("mask", np.zeros(shape, np.uint8))
        return _empty(shape, params, seg.blocks, params.period_default)

    field = estimate_orientation(tensor, seg.blocks, params)
    block_angles = field.angles()
    if debug:
        debug("orientation", _orientation_image(to_uint8(norm, -3, 3), block_angles, seg.blocks, b))

    # everything after this works on the finger's bounding box only (origin block aligned)
    y0, y1, x0, x1 = _crop_box(seg.pixels, align=max(b, params.freq_step), margin=8)
    mask = seg.pixels[y0:y1, x0:x1]
    normc = norm[y0:y1, x0:x1]
    cshape = (y1 - y0, x1 - x0)

    sc = params.enhance_scale
    small = (-(-cshape[0] // sc), -(-cshape[1] // sc))
    norm_small = cv2.resize(normc, small[::-1], interpolation=cv2.INTER_AREA)
    mask_small = cv2.resize(mask.astype(np.uint8), small[::-1], interpolation=cv2.INTER_AREA) > 0
    period = estimate_period(norm_small, mask_small, params, scale=sc)
    full_small = (-(-shape[0] // sc), -(-shape[1] // sc))
    angles_small = pixel_angles(field.cos2, field.sin2, full_small, b // sc)
    angles_small = angles_small[y0 // sc : y0 // sc + small[0], x0 // sc : x0 // sc + small[1]]
    periods_small = pixel_period(period, small, params.freq_step / sc)
    if debug:
        full = np.zeros(shape, np.float32)
        full[y0:y1, x0:x1] = cv2.resize(periods_small, cshape[::-1]) * mask
        debug("frequency", to_uint8(full, 0, params.period_max))

    enhanced = enhance(norm_small, cshape, mask_small, angles_small, periods_small, full_small, params)
    clarity = ridge_clarity(enhanced, normc, mask, params)
    seg = refine(seg, clarity, period.band_fraction, params.freq_step, (y0, x0), shape, params)
    if not seg.pixels.any():
        if debug:
            debug("mask", np.zeros(shape, np.uint8))
        return _empty(shape, params, seg.blocks, period.median)
    if debug:
        debug("mask", seg.pixels.astype(np.uint8) * 255)
        full = np.full(shape, -2.0, np.float32)
        full[y0:y1, x0:x1] = -enhanced
        debug("enhanced", to_uint8(full, -2.0, 2.0))

    def angle_at(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return sample_angles(field, xs + x0, ys + y0, b)

    def reliability_at(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Flow coherence and ridge clarity, each relative to a level counted as fully clear."""
        coh = sample_grid(field.coherence, xs + x0, ys + y0, b) / params.quality_coherence_ref
        clear = sample_grid(clarity, xs, ys, b) / params.quality_clarity_ref
        return np.clip(coh, 0, 1) * np.clip(clear, 0, 1)

    return Prepared(
        norm=normc,
        enhanced=enhanced,
        mask=seg.pixels[y0:y1, x0:x1],
        border=border_distance(seg.pixels[y0:y1, x0:x1]),
        y0=y0,
        x0=x0,
        shape=shape,
        blocks=seg.blocks,
        block_angles=block_angles,
        period=float(period.median),
        angle_at=angle_at,
        reliability_at=reliability_at,
    )


def extract_features(
    image: np.ndarray,
    dpi: int = 500,
    params: ExtractionParams | None = None,
    debug: Debug | None = None,
) -> Features:
    """Extract minutiae and context from a greyscale fingerprint image.

    Raises ValueError for unusable input (see matcher.validate). An image without a
    recognisable finger area yields Features with no minutiae and an empty mask.
    """
    params = params or ExtractionParams()
    detector = params.detector
    if not isinstance(detector, Detector):
        raise ValueError(f"unknown minutia detector {detector!r} (a matcher.detectors object expected)")
    p = prepare(image, dpi, params, debug)
    if isinstance(p, Features):
        return p
    m = detector.detect(p, params, debug)
    if debug:
        debug("minutiae", _minutiae_image(to_uint8(p.full(p.norm, -3.0), -3, 3), m.x + p.x0, m.y + p.y0, m.angle, m.kind))
    return _features(p, m, params)


def _features(p: Prepared, m, params: ExtractionParams) -> Features:
    """Package detected minutiae (crop coordinates, image y-down angles) as Features."""
    minutiae = np.stack(
        [
            m.x + p.x0,
            m.y + p.y0,
            _wrap(-m.angle, 2 * np.pi),  # image y-down angle -> ISO counter-clockwise
            m.quality,
            m.kind.astype(np.float32),
        ],
        axis=1,
    ).astype(np.float32)
    orientation = np.where(p.blocks, _wrap(-p.block_angles, np.pi), np.nan).astype(np.float32)
    return Features(
        minutiae=minutiae.reshape(-1, 5),
        mask=p.blocks,
        mask_block=params.block,
        shape=p.shape,
        orientation=orientation,
        ridge_period=p.period,
    )
