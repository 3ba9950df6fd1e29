"""Foreground (finger) segmentation from block gradient energy and coherence."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fpverify.matcher.orientation import BlockTensor, block_means, upsample_blocks
from fpverify.matcher.params import ExtractionParams


@dataclass(frozen=True)
class Segmentation:
    blocks: np.ndarray  # bool block grid
    pixels: np.ndarray  # bool pixel mask (image frame excluded)
    energy: np.ndarray  # float32 block grid, relative gradient energy (for quality)


def border_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (px, float32) from each finger pixel to the nearest pixel off the finger."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _largest_component_filled(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fg = labels == keep
    # fill holes: background components that do not touch the border
    n, labels = cv2.connectedComponents((~fg).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fg |= ~np.isin(labels, border)
    return fg


def _pixel_mask(blocks: np.ndarray, shape: tuple[int, int], params: ExtractionParams) -> np.ndarray:
    """Smooth pixel outline: bilinear upsampling of a blurred block mask, pulled in a little."""
    soft = cv2.GaussianBlur(blocks.astype(np.float32), (0, 0), 1.0)
    pixels = upsample_blocks(soft, shape, params.block) > 0.5
    if params.seg_erode_px > 0:
        pixels = cv2.erode(pixels.astype(np.uint8), _disk(params.seg_erode_px)).astype(bool)
    pixels[0, :] = pixels[-1, :] = False
    pixels[:, 0] = pixels[:, -1] = False
    return pixels


def flat_blocks(image: np.ndarray, params: ExtractionParams) -> np.ndarray:
    """Blocks without any fine texture: outside the sensor's active area (the grey frame of a
    trapezoidal window) or saturated background. A finger is never perfectly smooth."""
    hp = image - cv2.GaussianBlur(image, (0, 0), 3.0)
    energy = np.sqrt(block_means(hp * hp, params.block))
    ref = float(np.percentile(energy, 90))
    return energy <= params.seg_flat_rel * max(ref, 1e-6)


def segment(tensor: BlockTensor, image: np.ndarray, params: ExtractionParams) -> Segmentation:
    """Blocks with strong, coherent gradients are finger; then smooth the region.

    Energy is relative to the image's own strong blocks, so the threshold is contrast-free.
    Coherence rejects sensor noise and background texture, which have energy but no flow.
    """
    s = params.seg_smooth_blocks
    gxx = cv2.GaussianBlur(tensor.gxx, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    gyy = cv2.GaussianBlur(tensor.gyy, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    gxy = cv2.GaussianBlur(tensor.gxy, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    energy = gxx + gyy
    ref = float(np.percentile(energy, 90))
    rel = energy / max(ref, 1e-6)
    coherence = np.hypot(gxx - gyy, 2 * gxy) / np.maximum(energy, 1e-6)

    fg = ((rel > params.seg_energy_rel) & (coherence > params.seg_coherence_min)) | (
        rel > params.seg_strong_energy_rel
    )
    # keep off textureless areas and the edge between them and the finger (sensor frame lines)
    flat = flat_blocks(image, params).astype(np.uint8)
    near_flat = cv2.dilate(flat, _disk(params.seg_flat_margin_blocks)).astype(bool)
    fg8 = fg.astype(np.uint8)
    fg8 = cv2.morphologyEx(fg8, cv2.MORPH_CLOSE, _disk(params.seg_close_blocks))
    fg8 = cv2.morphologyEx(fg8, cv2.MORPH_OPEN, _disk(params.seg_open_blocks))
    blocks = _largest_component_filled(fg8.astype(bool) & ~near_flat)
    if blocks.sum() < params.seg_min_area_blocks:
        blocks = np.zeros_like(blocks)
    shape = (int(image.shape[0]), int(image.shape[1]))
    return Segmentation(blocks=blocks, pixels=_pixel_mask(blocks, shape, params), energy=rel.astype(np.float32))


def ridge_clarity(enhanced: np.ndarray, normalised: np.ndarray, mask: np.ndarray,
                  params: ExtractionParams) -> np.ndarray:
    """Share of the local signal energy that the matched Gabor filters explain, per block (0..1).

    Noise and sensor texture carry energy the oriented, period-tuned filters do not pass.
    """
    b = params.block
    s = params.clarity_sigma / b
    num = cv2.GaussianBlur(block_means(enhanced * enhanced, b), (0, 0), s)
    den = cv2.GaussianBlur(block_means(normalised * normalised * mask, b), (0, 0), s)
    return np.clip(num / np.maximum(den, 1e-3), 0.0, 1.0)


def refine(seg: Segmentation, clarity: np.ndarray, band_fraction: np.ndarray, band_step: int,
           origin: tuple[int, int], shape: tuple[int, int], params: ExtractionParams) -> Segmentation:
    """Second pass of segmentation once ridge period and enhancement are known: drop blocks
    whose ridges the matched filters do not explain (low clarity) and blocks whose spectrum is
    not ridge-like (sensor frame edges, smudges: power below the ridge band).

    ``clarity`` is the block grid and ``band_fraction`` the frequency grid (cell (i, j) centred
    at pixel (i, j) * band_step) of the crop starting at ``origin`` (block aligned).
    """
    b = params.block
    gy, gx = origin[0] // b, origin[1] // b
    h = min(clarity.shape[0], seg.blocks.shape[0] - gy)
    w = min(clarity.shape[1], seg.blocks.shape[1] - gx)
    # band fraction at the block centres of the crop
    cy = ((np.arange(h) + 0.5) * b - 0.5) / band_step
    cx = ((np.arange(w) + 0.5) * b - 0.5) / band_step
    mx, my = np.meshgrid(cx.astype(np.float32), cy.astype(np.float32))
    band = cv2.remap(band_fraction.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    good = np.zeros(seg.blocks.shape, np.float32)
    good[gy : gy + h, gx : gx + w] = (
        (clarity[:h, :w] > params.seg_clarity_min) & (band > params.seg_band_min)
    )
    good = cv2.GaussianBlur(good, (0, 0), 1.0) > 0.5
    fg8 = (seg.blocks & good).astype(np.uint8)
    fg8 = cv2.morphologyEx(fg8, cv2.MORPH_OPEN, _disk(params.seg_open_blocks))
    fg8 = cv2.morphologyEx(fg8, cv2.MORPH_CLOSE, _disk(params.seg_close_blocks))
    blocks = _largest_component_filled(fg8.astype(bool)) & seg.blocks
    if blocks.sum() < params.seg_min_area_blocks:
        blocks = np.zeros_like(blocks)
    return Segmentation(blocks=blocks, pixels=_pixel_mask(blocks, shape, params), energy=seg.energy)
