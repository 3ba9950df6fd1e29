"""Synthetic fingerprints in the spirit of SFinGe (Cappelli, Maio, Maltoni).

    master = generate_finger(seed)                     # one finger: shape, class, ridges, minutiae
    image, minutiae = impression(master, k, seed=0)    # its k-th impression and ground truth

Everything is pure numpy/OpenCV computation, deterministic from the seeds, no file I/O.
Ground-truth minutiae are (N, 4) float32 rows: x, y (pixels, 500 dpi), angle (radians, ISO
19794-2: counter-clockwise from x, image y down), type (1 ridge ending, 2 bifurcation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpverify.matcher.synth import impression as _impression
from fpverify.matcher.synth import minutiae as _minutiae
from fpverify.matcher.synth import orientation as _orientation
from fpverify.matcher.synth import ridges as _ridges

CLASSES = _orientation.CLASSES
SHAPE = (416, 352)  # (height, width) of masters and impressions, 500 dpi
ENDING, BIFURCATION = _minutiae.ENDING, _minutiae.BIFURCATION

__all__ = ["CLASSES", "SHAPE", "Master", "generate_finger", "impression"]


@dataclass(frozen=True)
class Master:
    seed: int
    kind: str  # fingerprint class, one of CLASSES
    pattern: np.ndarray  # float32 ridge pattern in [-1, 1], ridges > 0
    mask: np.ndarray  # float32 finger silhouette, 1 inside
    orientation: np.ndarray  # float32 ridge orientation, radians [0, pi)
    period: np.ndarray  # float32 ridge period, pixels
    minutiae: np.ndarray  # (N, 4) float32 x, y, angle, type
    centre: tuple[float, float]
    cores: tuple[complex, ...]
    deltas: tuple[complex, ...]


def generate_finger(
    seed: int, kind: str | None = None, shape: tuple[int, int] = SHAPE, half_resolution: bool = True
) -> Master:
    """A master fingerprint, deterministic from `seed` (class drawn by natural frequency unless given)."""
    rng = np.random.default_rng([int(seed), 0xF1])
    if kind is None:
        kind = str(rng.choice(CLASSES, p=_orientation.CLASS_WEIGHTS))
    elif kind not in CLASSES:
        raise ValueError(f"unknown fingerprint class {kind!r}; one of {CLASSES}")
    mask, centre = _orientation.finger_mask(shape, rng)
    cores, deltas = _orientation.singular_points(kind, shape, centre, rng)
    orientation = _orientation.orientation_field(shape, kind, cores, deltas, rng)
    period = _orientation.ridge_period(shape, centre, rng)
    pattern = _ridges.grow_ridges(orientation, period, rng, half_resolution=half_resolution)
    valid = _minutiae.reliable_region(pattern, mask, margin=10)
    minutiae = _minutiae.detect(pattern, valid, float(np.median(period)), orientation)
    return Master(int(seed), kind, pattern, mask, orientation, period, minutiae, centre, tuple(cores), tuple(deltas))


def impression(master: Master, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The k-th impression of a master: (uint8 image of SHAPE, ground-truth minutiae (N, 4))."""
    return _impression.render(master, int(k), int(seed))
