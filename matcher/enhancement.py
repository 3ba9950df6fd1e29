"""Contextual Gabor enhancement: a bank of oriented, period-tuned filters applied in the
frequency domain; each pixel takes the response of the filters matching its own orientation
(linear interpolation between the two nearest) and period (nearest bank)."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from fpverify.matcher.params import ExtractionParams


@lru_cache(maxsize=128)
def gabor_transfer(shape: tuple[int, int], period: float, angle: float, params: ExtractionParams) -> np.ndarray:
    """Real transfer function of an even-symmetric Gabor filter, in OpenCV's CCS layout.

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
    transfer = _to_ccs(transfer / (h * w)).astype(np.float32)  # 1/(h w): the inverse DFT's scale
    transfer.setflags(write=False)
    return transfer


def _to_ccs(t: np.ndarray) -> np.ndarray:
    """A real, point-symmetric transfer function (rfft2 layout, even sizes) in OpenCV's packed CCS
    layout, where each complex coefficient is two reals: multiplying by it scales both parts."""
    m, n2 = t.shape
    n = 2 * (n2 - 1)
    out = np.empty((m, n), t.dtype)
    out[:, 1 : n - 1 : 2] = t[:, 1 : n2 - 1]  # Re and Im of columns 1 .. n/2 - 1
    out[:, 2 : n - 1 : 2] = t[:, 1 : n2 - 1]
    for col, j in ((0, 0), (n - 1, n2 - 1)):  # columns 0 and n/2 are packed down the rows
        out[0, col] = t[0, j]
        out[1 : m - 1 : 2, col] = t[1 : m // 2, j]
        out[2 : m - 1 : 2, col] = t[1 : m // 2, j]
        out[m - 1, col] = t[m // 2, j]
    return out


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
    small: np.ndarray,
    full_shape: tuple[int, int],
    mask: np.ndarray,
    angles: np.ndarray,
    periods: np.ndarray,
    fft_base: tuple[int, int],
    params: ExtractionParams,
) -> np.ndarray:
    """Return the enhanced float32 image at full resolution: ridges negative, valleys positive.

    Filtering runs at 1/params.enhance_scale resolution (ridges are ~9 px apart, so half
    resolution still samples them well and the FFTs cost a quarter): ``small`` is the
    normalised image at that scale, ``mask``, ``angles`` (ridge direction) and ``periods``
    (in full-resolution pixels) are on the same grid; ``full_shape`` is the output shape and
    ``fft_base`` the whole image's shape at the reduced scale.
    """
    h, w = full_shape
    hs, ws = small.shape
    inside = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    # FFT size from the whole image (not the crop): one size per sensor, so the filter bank
    # cached for it is reused by every capture
    fshape = _fft_shape((max(hs, fft_base[0]), max(ws, fft_base[1])))
    padded = np.zeros(fshape, np.float32)
    padded[:hs, :ws] = small * mask
    # OpenCV's real DFT (packed CCS layout) is about 1.3x numpy's here; nonzeroRows skips the padding
    spectrum = cv2.dft(padded, nonzeroRows=hs)

    n = params.gabor_orientations
    scale = params.enhance_scale
    bins = np.asarray(params.gabor_period_bins, np.float32)
    pix = np.flatnonzero(inside)
    pos = angles.ravel()[pix] * (n / np.pi)  # fractional orientation index per pixel
    base = np.floor(pos)
    frac = (pos - base).astype(np.float32)
    lo = base.astype(np.int64) % n
    nearest = np.argmin(np.abs(periods.ravel()[pix, None] - bins), axis=-1)
    # every pixel takes two (bank, orientation) responses with linear weights
    # int16 keys (banks x orientations < 32768): numpy sorts them by radix, several times faster
    keys = np.concatenate([nearest * n + lo, nearest * n + (lo + 1) % n]).astype(np.int16)
    pixels = np.concatenate([pix, pix])
    weights = np.concatenate([1.0 - frac, frac])
    order = np.argsort(keys, kind="stable")
    keys, pixels, weights = keys[order], pixels[order], weights[order]
    starts = np.flatnonzero(np.diff(keys, prepend=-1))
    ends = np.append(starts[1:], keys.size)

    out = np.zeros(hs * ws, np.float32)
    for a, e in zip(starts, ends, strict=True):
        b, k = divmod(int(keys[a]), n)
        transfer = gabor_transfer(fshape, float(bins[b]) / scale, k * np.pi / n, params)
        response = cv2.idft(spectrum * transfer, flags=cv2.DFT_REAL_OUTPUT)[:hs, :ws].ravel()
        sel = pixels[a:e]
        out[sel] += weights[a:e] * response[sel]
    out = out.reshape(hs, ws)
    if (hs, ws) == (h, w):
        return out
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
