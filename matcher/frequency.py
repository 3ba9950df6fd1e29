"""Ridge period (inverse frequency) from windowed block spectra."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fpverify.matcher.params import ExtractionParams


@dataclass(frozen=True)
class RidgePeriod:
    grid: np.ndarray  # float32 period map on the frequency grid (params.freq_step pixels per cell)
    median: float  # median period over the finger
    band_fraction: np.ndarray  # float32, same grid: share of window power in the ridge band


@lru_cache(maxsize=8)
def _spectral_tables(params: ExtractionParams, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = params.freq_window // scale
    hann = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    radius = np.sqrt(fx * fx + fy * fy) / scale  # cycles per full-resolution pixel
    band = (radius >= 1.0 / params.period_max) & (radius <= 1.0 / params.period_min)
    for arr in (hann, radius, band):
        arr.setflags(write=False)
    return hann, radius.astype(np.float32), band


def estimate_period(normalised: np.ndarray, mask: np.ndarray, params: ExtractionParams,
                    scale: int = 1) -> RidgePeriod:
    """Power-weighted mean spatial frequency in the ridge band, per window, then smoothed.

    ``normalised`` and ``mask`` may be reduced by ``scale`` (ridges stay well sampled at half
    resolution and the block FFTs cost a quarter); windows and steps are given at full
    resolution in params. Squared power sharpens the weighting toward the spectral peak,
    which a short FFT would otherwise quantise coarsely.
    """
    n, step = params.freq_window // scale, params.freq_step // scale
    hann, radius, band = _spectral_tables(params, scale)
    img = normalised  # unmasked: a window at the finger's edge should see what is really there
    pad = n // 2
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    windows = sliding_window_view(padded, (n, n))[::step, ::step]
    gh, gw = windows.shape[:2]
    centres = mask[::step, ::step][:gh, :gw]
    on = np.zeros((gh, gw), bool)
    on[: centres.shape[0], : centres.shape[1]] = centres
    # only windows centred on the finger are analysed
    spec = np.abs(np.fft.rfft2(windows[on] * hann)) ** 2
    spec = spec.reshape(spec.shape[0], -1)
    bandflat = band.ravel()
    inband = spec[:, bandflat]
    pw = inband**2
    total_on = pw.sum(axis=1)
    freq_on = (pw * radius.ravel()[bandflat]).sum(axis=1) / np.maximum(total_on, 1e-12)
    frac_on = inband.sum(axis=1) / np.maximum(spec.sum(axis=1), 1e-12)
    freq = np.zeros((gh, gw))
    total = np.zeros((gh, gw))
    frac = np.zeros((gh, gw))
    freq[on], total[on], frac[on] = freq_on, total_on, frac_on

    # windows with a clear peak in the ridge band are reliable
    reliable = on & (frac > 0.3) & (total > 0)
    if reliable.sum() < 3:
        default = np.full((gh, gw), params.period_default, np.float32)
        return RidgePeriod(default, params.period_default, frac.astype(np.float32))
    period = 1.0 / np.maximum(freq, 1e-6)
    period = np.clip(period, params.period_min, params.period_max)
    median = float(np.median(period[reliable]))
    filled = np.where(reliable, period, median).astype(np.float32)
    w = reliable.astype(np.float32)
    s = params.freq_smooth_blocks
    num = cv2.GaussianBlur(filled * w, (0, 0), s)
    den = cv2.GaussianBlur(w, (0, 0), s)
    smooth = np.where(den > 0.05, num / np.maximum(den, 1e-6), median).astype(np.float32)
    return RidgePeriod(smooth, median, frac.astype(np.float32))


def pixel_period(period: RidgePeriod, shape: tuple[int, int], step: float) -> np.ndarray:
    """Period per pixel of a grid where window centres are ``step`` pixels apart (cell (i, j)
    centred at pixel (i * step, j * step))."""
    ys = (np.arange(shape[0], dtype=np.float32) / step)[:, None]
    xs = (np.arange(shape[1], dtype=np.float32) / step)[None, :]
    mx = np.broadcast_to(xs, shape).astype(np.float32)
    my = np.broadcast_to(ys, shape).astype(np.float32)
    return cv2.remap(period.grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
