"""Ridge pattern grown by iterative, spatially variant Gabor filtering (as in SFinGe).

Each iteration filters the whole image with a small bank of Gabor kernels (orientation bins x two
periods) and picks, per pixel, the response interpolated for that pixel's orientation and period;
a soft clip pushes values towards -1/+1. Starting from a few random seeds, ridges grow outwards
and minutiae appear where growing patterns meet, like in real fingers.
"""

from __future__ import annotations

import cv2
import numpy as np

N_ORIENT = 12
PERIODS = (7.5, 11.5)  # the bank's two periods; pixels blend between them
GAIN = 3.0  # soft-clip gain: higher settles faster into binary-like ridges
SEEDS = (40, 40)  # range of random starting points; where growth fronts meet, ridges end or fork
ITERATIONS = 14  # half-resolution passes: enough for the fronts to fill the finger from SEEDS


def gabor_kernel(theta: float, period: float) -> np.ndarray:
    """Even Gabor kernel for ridges running along theta (CCW from x, image y down)."""
    radius = int(np.ceil(0.9 * period))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    along = xx * np.cos(theta) - yy * np.sin(theta)
    across = xx * np.sin(theta) + yy * np.cos(theta)
    s_along, s_across = 0.45 * period, 0.40 * period
    g = np.exp(-0.5 * (along**2 / s_along**2 + across**2 / s_across**2)) * np.cos(2 * np.pi * across / period)
    g -= g.mean()  # no DC: flat regions give no response
    return (g / np.abs(g).sum()).astype(np.float32)


_BANK: dict[tuple[int, float], np.ndarray] = {}


def _kernel(k: int, period: float) -> np.ndarray:
    key = (k, period)
    if key not in _BANK:  # pure function of (k, period): caching cannot change results
        _BANK[key] = gabor_kernel(np.pi * k / N_ORIENT, period)
    return _BANK[key]


def _weights(orientation: np.ndarray, period: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Per (orientation bin, period) pixel weights: linear between neighbouring bins and periods."""
    pos = np.mod(orientation, np.pi) / np.pi * N_ORIENT
    k0 = np.floor(pos).astype(np.int32) % N_ORIENT
    a = (pos - np.floor(pos)).astype(np.float32)
    b = np.clip((period - PERIODS[0]) / (PERIODS[1] - PERIODS[0]), 0, 1).astype(np.float32)
    out = []
    for k in range(N_ORIENT):
        w_k = np.where(k0 == k, 1 - a, 0) + np.where((k0 + 1) % N_ORIENT == k, a, 0)
        if not w_k.any():
            continue
        for j, w_p in enumerate((1 - b, b)):
            out.append((k, j, (w_k * w_p).astype(np.float32)))
    return out


def gabor_step(x: np.ndarray, weights, scale: float) -> np.ndarray:
    out = np.zeros_like(x)
    for k, j, w in weights:
        out += w * cv2.filter2D(x, -1, _kernel(k, PERIODS[j] * scale), borderType=cv2.BORDER_REFLECT)
    return out


def _iterate(x, weights, scale, iterations):
    for _ in range(iterations):
        r = gabor_step(x, weights, scale)
        x = np.clip(GAIN * r / (float(np.percentile(np.abs(r), 90)) + 1e-6), -1.0, 1.0)
    return x


def grow_ridges(
    orientation: np.ndarray,
    period: np.ndarray,
    rng: np.random.Generator,
    iterations: int | None = None,
    seeds: int | None = None,
    half_resolution: bool = True,
) -> np.ndarray:
    """Continuous ridge pattern in [-1, 1] (ridges > 0).

    Grown at half resolution (a quarter of the pixels, kernels half as wide), then brought to full
    resolution and sharpened by one full-resolution pass. half_resolution=False grows at full
    resolution throughout (the slow baseline the synth benchmark compares against).
    """
    h, w = orientation.shape
    iterations = ITERATIONS if iterations is None else iterations
    if seeds is None:  # drawn per finger only when the range is open (same stream otherwise)
        seeds = SEEDS[0] if SEEDS[0] == SEEDS[1] else int(rng.integers(SEEDS[0], SEEDS[1] + 1))
    if not half_resolution:
        x = np.zeros((h, w), np.float32)
        ys, xs = rng.integers(0, h, seeds), rng.integers(0, w, seeds)
        x[ys, xs] = rng.choice([-1.0, 1.0], seeds).astype(np.float32)
        return _iterate(x, _weights(orientation, period), 1.0, iterations + 1)
    hh, hw = (h + 1) // 2, (w + 1) // 2
    # orientation is resampled through its doubled-angle vector so 0 and pi average correctly
    c2 = cv2.resize(np.cos(2 * orientation), (hw, hh), interpolation=cv2.INTER_AREA)
    s2 = cv2.resize(np.sin(2 * orientation), (hw, hh), interpolation=cv2.INTER_AREA)
    small_orientation = np.mod(0.5 * np.arctan2(s2, c2), np.pi)
    small_period = cv2.resize(period, (hw, hh), interpolation=cv2.INTER_AREA)
    x = np.zeros((hh, hw), np.float32)
    ys, xs = rng.integers(0, hh, seeds), rng.integers(0, hw, seeds)
    x[ys, xs] = rng.choice([-1.0, 1.0], seeds).astype(np.float32)
    x = _iterate(x, _weights(small_orientation, small_period), 0.5, iterations)
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC)
    return _iterate(x, _weights(orientation, period), 1.0, 1)
