"""Contextual Gabor enhancement: a bank of oriented, period-tuned filters applied in the
frequency domain; each pixel takes the response of the filters matching its own orientation
(linear interpolation between the two nearest) and period (nearest bank)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from matcher.params import ExtractionParams


@lru_cache(maxsize=160)
def gabor_transfer(shape: tuple[int, int], period: float, angle: float, params: ExtractionParams) -> np.ndarray:
    """Real transfer function (rfft2 layout) of an even-symmetric Gabor filter.

    ``angle`` is the ridge direction (image coordinates); the filter oscillates across it.
    Zero DC so flat areas map to 0.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(w)[None, :].astype(np.float32)
    # frequency coordinates: u across the ridges (normal direction), v along them
    nx, ny = -np.sin(angle), np.cos(angle)
    u = fx * nx + fy * ny
    v = -fx * ny + fy * nx
    f0 = 1.0 / period
    sa = params.gabor_sigma_across * period  # spatial sigmas
    sl = params.gabor_sigma_along * period
    k = 2.0 * np.pi**2
    along = np.exp(-k * (v * sl) ** 2)
    transfer = (np.exp(-k * ((u - f0) * sa) ** 2) + np.exp(-k * ((u + f0) * sa) ** 2)) * along
    transfer[0, 0] = 0.0
    transfer = transfer.astype(np.float32)
    transfer.setflags(write=False)
    return transfer


def _fft_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """At least 16 px of zero padding against wrap-around; sizes are multiples of 32 with small
    prime factors so few distinct shapes occur (the filter bank is cached per shape)."""

    def good(n: int) -> int:
        k = -(-(n + 16) // 32)
        while True:
            m = k
            for p in (2, 3, 5):
                while m % p == 0:
                    m //= p
            if m == 1:
                return 32 * k
            k += 1

    return good(shape[0]), good(shape[1])


def enhance(
    normalised: np.ndarray,
    angles: np.ndarray,
    periods: np.ndarray,
    mask: np.ndarray,
    params: ExtractionParams,
) -> np.ndarray:
    """Return the enhanced float32 image (ridges positive... valleys negative), 0 off-mask."""
    h, w = normalised.shape
    fshape = _fft_shape((h, w))
    spectrum = np.fft.rfft2(normalised * mask, s=fshape)

    n = params.gabor_orientations
    pos = angles * (n / np.pi)  # fractional orientation index per pixel
    lo = np.floor(pos).astype(np.int32) % n
    frac = (pos - np.floor(pos)).astype(np.float32)
    hi = (lo + 1) % n

    bins = np.asarray(params.gabor_period_bins, np.float32)
    nearest = np.argmin(np.abs(periods[..., None] - bins), axis=-1)
    out = np.zeros((h, w), np.float32)
    for b, period in enumerate(bins):
        in_bin = (nearest == b) & mask
        if not in_bin.any():
            continue
        for k in range(n):
            weight = np.where(lo == k, 1.0 - frac, 0.0) + np.where(hi == k, frac, 0.0)
            weight *= in_bin
            if not weight.any():
                continue
            transfer = gabor_transfer(fshape, float(period), k * np.pi / n, params)
            response = np.fft.irfft2(spectrum * transfer, s=fshape)[:h, :w]
            out += weight * response
    return out
