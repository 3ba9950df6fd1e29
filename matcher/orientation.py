"""Ridge orientation from the gradient structure tensor (doubled-angle averaging, two scales).

Angles here are in image coordinates (x right, y down, atan2(dy, dx)); features.py converts
to the ISO convention at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fpverify.matcher.params import ExtractionParams


@dataclass(frozen=True)
class BlockTensor:
    """Per-block means of the gradient products (blocks of params.block pixels)."""

    gxx: np.ndarray
    gyy: np.ndarray
    gxy: np.ndarray


@dataclass(frozen=True)
class OrientationField:
    cos2: np.ndarray  # block grid, unit doubled-angle vector of the ridge direction
    sin2: np.ndarray
    coherence: np.ndarray  # block grid, 0 (isotropic) .. 1 (perfectly parallel ridges)

    def angles(self) -> np.ndarray:
        """Ridge direction per block, radians in [0, pi), image coordinates."""
        return np.mod(0.5 * np.arctan2(self.sin2, self.cos2), np.pi).astype(np.float32)

    def pixel_angles(self, shape: tuple[int, int], block: int) -> np.ndarray:
        """Ridge direction per pixel (bilinear on the doubled-angle vectors)."""
        return pixel_angles(self.cos2, self.sin2, shape, block)


def block_means(values: np.ndarray, block: int) -> np.ndarray:
    h, w = values.shape[0] // block, values.shape[1] // block
    v = values[: h * block, : w * block]
    return v.reshape(h, block, w, block).mean(axis=(1, 3), dtype=np.float32)


def upsample_blocks(grid: np.ndarray, shape: tuple[int, int], block: int) -> np.ndarray:
    """Bilinear upsampling of a block grid to a pixel image of ``shape`` (edges replicated)."""
    gh, gw = grid.shape
    up = cv2.resize(grid.astype(np.float32), (gw * block, gh * block), interpolation=cv2.INTER_LINEAR)
    pad_y, pad_x = shape[0] - up.shape[0], shape[1] - up.shape[1]
    if pad_y or pad_x:
        up = cv2.copyMakeBorder(up, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    return up


def pixel_angles(cos2: np.ndarray, sin2: np.ndarray, shape: tuple[int, int], block: int) -> np.ndarray:
    c = upsample_blocks(cos2, shape, block)
    s = upsample_blocks(sin2, shape, block)
    return np.mod(0.5 * np.arctan2(s, c), np.pi).astype(np.float32)


def structure_tensor(image: np.ndarray, params: ExtractionParams) -> BlockTensor:
    """Gradient products averaged per block. ``image`` is the (resized) raw image, float32."""
    g = cv2.GaussianBlur(image, (0, 0), params.grad_sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    b = params.block
    return BlockTensor(block_means(gx * gx, b), block_means(gy * gy, b), block_means(gx * gy, b))


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def estimate_orientation(tensor: BlockTensor, mask: np.ndarray, params: ExtractionParams) -> OrientationField:
    """Two-scale doubled-angle averaging.

    The fine scale follows the flow closely around cores and deltas; where it is incoherent
    (scars, creases, noise) the coarse scale takes over.
    """
    w = mask.astype(np.float32)
    # gradient doubled-angle vector; the ridge direction is perpendicular (angle + pi/2 -> negate)
    vx = (tensor.gyy - tensor.gxx) * w
    vy = (-2.0 * tensor.gxy) * w
    energy = (tensor.gxx + tensor.gyy) * w

    fx, fy = _smooth(vx, params.orient_fine_blocks), _smooth(vy, params.orient_fine_blocks)
    fe = _smooth(energy, params.orient_fine_blocks)
    fine_norm = np.hypot(fx, fy)
    coherence = fine_norm / np.maximum(fe, 1e-6)

    # coarse scale averages unit vectors weighted by coherence, so noisy strong blocks do not dominate
    ux, uy = fx / np.maximum(fine_norm, 1e-6), fy / np.maximum(fine_norm, 1e-6)
    cw = coherence * w
    cx = _smooth(ux * cw, params.orient_coarse_blocks)
    cy = _smooth(uy * cw, params.orient_coarse_blocks)
    cn = np.maximum(np.hypot(cx, cy), 1e-6)
    cx, cy = cx / cn, cy / cn

    lo, hi = params.orient_coherence_lo, params.orient_coherence_hi
    t = np.clip((coherence - lo) / (hi - lo), 0.0, 1.0)
    bx, by = t * ux + (1 - t) * cx, t * uy + (1 - t) * cy
    bn = np.maximum(np.hypot(bx, by), 1e-6)
    return OrientationField(
        cos2=(bx / bn).astype(np.float32),
        sin2=(by / bn).astype(np.float32),
        coherence=np.clip(coherence, 0, 1).astype(np.float32),
    )


def sample_grid(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray, block: int) -> np.ndarray:
    """Bilinear sample of a block grid at pixel positions (cell (i, j) is centred at
    pixel (j + 0.5) * block - 0.5, (i + 0.5) * block - 0.5)."""
    if xs.size == 0:
        return np.zeros(0, np.float32)
    mx = ((np.asarray(xs, np.float32) + 0.5) / block - 0.5).reshape(-1, 1)
    my = ((np.asarray(ys, np.float32) + 0.5) / block - 0.5).reshape(-1, 1)
    out = cv2.remap(grid.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.ravel()


def sample_angles(field: OrientationField, xs: np.ndarray, ys: np.ndarray, block: int) -> np.ndarray:
    """Ridge direction (image coordinates, [0, pi)) at pixel positions."""
    c = sample_grid(field.cos2, xs, ys, block)
    s = sample_grid(field.sin2, xs, ys, block)
    return np.mod(0.5 * np.arctan2(s, c), np.pi).astype(np.float32)
