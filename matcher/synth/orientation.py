"""Finger shape, singular points and the orientation field (Sherlock-Monro zero-pole model with
Vizcaya-Gerhardt corrections, as in SFinGe)."""

from __future__ import annotations

import numpy as np

CLASSES = ("arch", "tented_arch", "left_loop", "right_loop", "whorl")
# Rough natural frequencies (Wilson et al.): loops dominate, arches are rare.
CLASS_WEIGHTS = (0.05, 0.05, 0.32, 0.30, 0.28)
FIELD_BEND = (0.3, 0.6)  # radians: amplitude range of the smooth per-finger orientation bend
BEND_SCALE = (90, 160)  # pixels: width range of the bend's features
PERIOD_BASE = (8.4, 11.0)  # pixels: range of a finger's base ridge period (about 45-60 ridges/inch)
PERIOD_NOISE = 0.5  # pixels: amplitude of the smooth variation of the period across a finger
SP_CORRECTION = 0.5  # radians: spread of each singular point's Vizcaya-Gerhardt angle correction
SP_KNOTS = 8  # knots of that piecewise-linear correction around each singular point
# Whorls with nearly the same cores and deltas showed the sensor the same rings: most of the
# synthetic impostors above the shipped thresholds were whorl pairs (issue 18, docs/synth.md).
WHORL_GAP = (0.03, 0.16)  # share of the height between a whorl's two cores
WHORL_SHIFT = 0.10  # share of the width: sideways spread of the lower core (spirals, double loops)
WHORL_DELTA = ((0.18, 0.36), (0.12, 0.30))  # (x, y) shares: where a whorl's deltas sit off the centre


def finger_mask(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float]]:
    """Float mask (1 inside) of a fingertip silhouette: rounder on top, longer towards the palm.

    Returns the mask and the silhouette's centre (x, y).
    """
    h, w = shape
    cx = w / 2 + rng.uniform(-0.03, 0.03) * w
    cy = h / 2 + rng.uniform(-0.02, 0.04) * h
    half_w = rng.uniform(0.40, 0.46) * w
    top = rng.uniform(0.42, 0.48) * h
    bottom = rng.uniform(0.58, 0.70) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy = np.where(yy < cy, (yy - cy) / top, (yy - cy) / bottom)
    dx = (xx - cx) / half_w
    r = np.abs(dx) ** 2.3 + np.abs(dy) ** 2.0
    mask = np.clip((1.0 - r) * 12.0, 0.0, 1.0)  # soft edge a few pixels wide
    return mask.astype(np.float32), (cx, cy)


def singular_points(kind: str, shape: tuple[int, int], centre, rng: np.random.Generator):
    """Cores and deltas (lists of complex x + iy, image coordinates) for a fingerprint class."""
    h, w = shape
    cx, cy = centre
    j = 1j

    def jitter(sx, sy):
        return rng.normal(0, sx) + j * rng.normal(0, sy)

    if kind == "arch":
        return [], []
    if kind == "tented_arch":
        core = cx + j * (cy - 0.05 * h) + jitter(0.02 * w, 0.03 * h)
        delta = core + j * rng.uniform(0.12, 0.18) * h + rng.normal(0, 0.01 * w)
        return [core], [delta]
    if kind in ("left_loop", "right_loop"):
        side = -1 if kind == "left_loop" else 1  # where the delta sits
        core = cx - side * 0.05 * w + j * (cy - 0.06 * h) + jitter(0.07 * w, 0.07 * h)
        delta = core + side * rng.uniform(0.15, 0.38) * w + j * rng.uniform(0.20, 0.40) * h
        return [core], [delta]
    if kind == "whorl":
        top = cx + j * (cy - 0.08 * h) + jitter(0.07 * w, 0.06 * h)
        gap = rng.uniform(*WHORL_GAP) * h
        bottom = top + rng.normal(0, WHORL_SHIFT * w) + j * gap
        (dx0, dx1), (dy0, dy1) = WHORL_DELTA
        d1 = cx - rng.uniform(dx0, dx1) * w + j * (cy + rng.uniform(dy0, dy1) * h)
        d2 = cx + rng.uniform(dx0, dx1) * w + j * (cy + rng.uniform(dy0, dy1) * h)
        return [top, bottom], [d1, d2]
    raise ValueError(f"unknown fingerprint class {kind!r}; one of {CLASSES}")


def orientation_field(shape, kind: str, cores, deltas, rng: np.random.Generator) -> np.ndarray:
    """Ridge orientation in radians [0, pi), measured counter-clockwise from x with y pointing down."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # work in a y-up frame so angles are counter-clockwise as in ISO 19794-2
    z = xx - 1j * yy
    theta = np.zeros(shape)
    for d in deltas:
        theta += 0.5 * _corrected_angle(z, d, rng)
    for c in cores:
        theta -= 0.5 * _corrected_angle(z, c, rng)
    if kind == "arch":
        # ridges bulge upwards in the middle: y = -a(y) * bump(x), orientation = atan(slope)
        cx = w / 2 + rng.normal(0, 0.03 * w)
        s = rng.uniform(0.22, 0.30) * w
        amp = rng.uniform(0.18, 0.30) * h * (0.3 + 0.7 * np.clip(yy / h, 0, 1))
        slope = amp * 2 * (xx - cx) / s**2 * np.exp(-(((xx - cx) / s) ** 2))
        theta = np.arctan(-slope)  # y up: bump rises towards the centre
    # a small global tilt, as fingers are never placed quite straight in the master
    theta += rng.normal(0, 0.05)
    # Real fields depart from the zero-pole model by smooth, finger-specific bends; without them two
    # fingers of one class share their field and their impostor scores look like mates' (issue 18:
    # same-class synthetic impostors scored 57 % above the fmr_1e-2 threshold, other pairs 1 %).
    theta += rng.uniform(*FIELD_BEND) * smooth_noise(shape, rng, rng.uniform(*BEND_SCALE))
    return np.mod(theta, np.pi).astype(np.float32)


def _corrected_angle(z: np.ndarray, point: complex, rng: np.random.Generator) -> np.ndarray:
    """arg(z - point) through a random piecewise-linear correction g (Vizcaya & Gerhardt, as in SFinGe).

    g(a) = a + e(a), e linear between SP_KNOTS knots around the point and equal at -pi and pi, so
    the winding (the class) is kept while the shape of the loop or delta differs from finger to finger.
    """
    a = np.angle(z - (point.real - 1j * point.imag))  # y-up frame, like z
    if SP_CORRECTION <= 0:
        return a
    knots = np.linspace(-np.pi, np.pi, SP_KNOTS + 1)
    e = np.clip(rng.normal(0, SP_CORRECTION, SP_KNOTS), -1.5 * SP_CORRECTION, 1.5 * SP_CORRECTION)
    return a + np.interp(a, knots, np.append(e, e[0]))


def smooth_noise(shape, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth random field with features about `scale` pixels wide."""
    import cv2

    h, w = shape
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def ridge_period(shape, centre, rng: np.random.Generator) -> np.ndarray:
    """Ridge period in pixels at 500 dpi: a base of PERIOD_BASE, a bit wider towards the lower half."""
    h, _ = shape
    base = rng.uniform(*PERIOD_BASE)
    yy = np.arange(h, dtype=np.float32)[:, None]
    trend = 0.8 * np.clip((yy - centre[1]) / (0.5 * h), -1, 1)
    return np.clip(base + trend + PERIOD_NOISE * smooth_noise(shape, rng, 120), 7.5, 12.0).astype(np.float32)
