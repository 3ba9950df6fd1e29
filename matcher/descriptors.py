"""Local descriptors: Minutia Cylinder-Code (Cappelli, Ferrara, Maltoni, IEEE TPAMI 2010).

Each minutia gets a fixed-length vector describing where its neighbours lie and how they are
oriented, in the minutia's own frame (so it is invariant to translation and rotation). Cells of the
cylinder that fall off the finger are zero, and the vector is L2-normalised: the local similarity
of two minutiae is then a plain dot product, which turns 1:1 and 1:N scoring into matrix products.

Only cells whose centre lies inside the cylinder's circle are stored (about pi/4 of the square),
which keeps the vector short: Ns=8, Nd=6 gives 312 floats.

Coordinates: templates store ISO-style minutiae (x right, y down, angle counter-clockwise from
the x axis). Here y is flipped so the usual right-handed formulas apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import pi, sqrt

import cv2
import numpy as np

from fpverify.matcher.params import MatchParams

TWO_PI = 2.0 * pi


def wrap(a: np.ndarray) -> np.ndarray:
    """Angle difference wrapped into [-pi, pi)."""
    return (a + pi) % TWO_PI - pi


@lru_cache(maxsize=8)
def cell_offsets(radius: float, ns: int) -> np.ndarray:
    """(C, 2) centres of the spatial cells inside the circle, in the minutia's frame."""
    step = 2.0 * radius / ns
    c = (np.arange(ns) - (ns - 1) / 2.0) * step
    gx, gy = np.meshgrid(c, c, indexing="ij")
    inside = gx**2 + gy**2 <= radius**2
    return np.stack([gx[inside], gy[inside]], axis=1).astype(np.float32)


def descriptor_length(p: MatchParams) -> int:
    return int(cell_offsets(p.cyl_radius, p.cyl_ns).shape[0]) * p.cyl_nd


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


@dataclass(frozen=True)
class LocalDescriptors:
    """Cylinders of the usable minutiae plus the geometry that consolidation needs."""

    desc: np.ndarray  # (K, D) float32, rows L2-normalised
    index: np.ndarray  # (K,) int: row of the template's minutiae each cylinder belongs to
    xy: np.ndarray  # (K, 2) float32, right-handed (y up)
    theta: np.ndarray  # (K,) float32 radians
    unit: np.ndarray  # (K, 2) float32 (cos, sin) of theta: rotation gate as a matrix product
    weight: np.ndarray  # (K,) float64 quality ** pair_quality_power: what a minutia counts in the pairing

    @property
    def count(self) -> int:
        return int(self.desc.shape[0])


def pair_geometry(d: LocalDescriptors) -> np.ndarray:
    """(3, K*K) float32 (row-major [i, j] flattened) pairwise relations, invariant to rotation and translation.

    [0] distance between minutiae i and j; [1] theta_i - theta_j (wrapped); [2] angle between
    minutia i's direction and the segment i -> j (wrapped).
    """
    diff = d.xy[None, :, :] - d.xy[:, None, :]  # [i, j] = xy_j - xy_i
    out = np.empty((3, d.count, d.count), np.float32)
    out[0] = np.hypot(diff[..., 0], diff[..., 1])
    out[1] = wrap(d.theta[:, None] - d.theta[None, :])
    out[2] = wrap(d.theta[:, None] - np.arctan2(diff[..., 1], diff[..., 0]))
    return out.reshape(3, -1)


def hull_validity(minutiae: np.ndarray, shape: tuple[int, int], block: int, margin: float) -> np.ndarray:
    """Foreground grid from the minutiae's convex hull grown by `margin` (when no mask is known)."""
    h, w = max(1, -(-shape[0] // block)), max(1, -(-shape[1] // block))
    grid = np.zeros((h, w), np.uint8)
    if len(minutiae) >= 3:
        pts = np.round(minutiae[:, :2] / block).astype(np.int32)
        cv2.fillConvexPoly(grid, cv2.convexHull(pts), 1)
    elif len(minutiae):
        for x, y in minutiae[:, :2]:
            grid[min(h - 1, int(y // block)), min(w - 1, int(x // block))] = 1
    r = max(1, int(round(margin / block)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(grid, kernel).astype(bool)


def build(
    minutiae: np.ndarray, valid_grid: np.ndarray, block: int, p: MatchParams
) -> LocalDescriptors:
    """Cylinders for the (best `p.max_minutiae`) minutiae; those mostly off the finger are dropped."""
    m = np.asarray(minutiae, np.float32)
    n_all = m.shape[0]
    order = np.argsort(-m[:, 3], kind="stable")[: p.max_minutiae] if n_all else np.zeros(0, int)
    order = np.sort(order)
    m = m[order]
    n = m.shape[0]
    offs = cell_offsets(p.cyl_radius, p.cyl_ns)
    nd = p.cyl_nd
    dlen = offs.shape[0] * nd
    empty = LocalDescriptors(
        np.zeros((0, dlen), np.float32), np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.float32),
        np.zeros((0, 2), np.float32), np.zeros(0, np.float64),
    )
    if n == 0:
        return empty

    xy = np.stack([m[:, 0], -m[:, 1]], axis=1)  # y up
    th = m[:, 2]
    c, s = np.cos(th), np.sin(th)
    # Cell centres of every cylinder: rotate the offsets into each minutia's frame.
    cx = xy[:, None, 0] + offs[None, :, 0] * c[:, None] - offs[None, :, 1] * s[:, None]
    cy = xy[:, None, 1] + offs[None, :, 0] * s[:, None] + offs[None, :, 1] * c[:, None]

    # Validity: cell centre on the finger (grid lookup, image y = -cy).
    gi = np.floor(-cy / block).astype(np.int64)
    gj = np.floor(cx / block).astype(np.int64)
    gh, gw = valid_grid.shape
    inb = (gi >= 0) & (gi < gh) & (gj >= 0) & (gj < gw)
    valid = np.zeros(inb.shape, bool)
    valid[inb] = valid_grid[gi[inb], gj[inb]]

    # Spatial contribution of neighbour t to cell (n, c): Gaussian of the distance.
    dx = cx[:, :, None] - xy[None, None, :, 0]
    dy = cy[:, :, None] - xy[None, None, :, 1]
    gs = np.exp(-(dx * dx + dy * dy) / (2.0 * p.sigma_s**2)) / (p.sigma_s * sqrt(TWO_PI))
    # Neighbours only within R + 3 sigma, never the minutia itself.
    pd = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    near = (pd <= p.cyl_radius + 3.0 * p.sigma_s) & ~np.eye(n, dtype=bool)
    gs *= near[:, None, :]

    # Directional contribution: Gaussian of the angle difference integrated over each section.
    dphi = wrap(th[:, None] - th[None, :])  # [n, t] = theta_n - theta_t
    step = TWO_PI / nd
    centres = -pi + (np.arange(nd) + 0.5) * step
    rel = wrap(centres[None, None, :] - dphi[:, :, None])
    k = 1.0 / (p.sigma_d * sqrt(2.0))
    cd = 0.5 * (erf((rel + step / 2) * k) - erf((rel - step / 2) * k))

    cells = np.einsum("nct,ntk->nck", gs.astype(np.float32), cd.astype(np.float32), optimize=True)
    cells = 1.0 / (1.0 + np.exp(-p.psi_tau * (cells - p.psi_mu)))
    cells *= valid[:, :, None]
    # Cells nobody contributes to still get Psi(0) > 0; clear them so sparse cylinders stay sparse.
    cells[cells < 1e-3] = 0.0

    keep = (valid.mean(axis=1) >= p.min_valid_fraction) & (near.sum(axis=1) >= p.min_neighbours)
    desc = cells.reshape(n, dlen)[keep].astype(np.float32)
    norm = np.linalg.norm(desc, axis=1)
    ok = norm > 0
    desc = desc[ok] / norm[ok, None]
    idx = np.flatnonzero(keep)[ok]
    return LocalDescriptors(
        desc=np.ascontiguousarray(desc, np.float32),
        index=order[idx].astype(np.int64),
        xy=np.ascontiguousarray(xy[idx], np.float32),
        theta=np.ascontiguousarray(th[idx], np.float32),
        unit=np.ascontiguousarray(np.stack([np.cos(th[idx]), np.sin(th[idx])], axis=1), np.float32),
        weight=_pair_weights(m[idx, 3], p.pair_quality_power),
    )


def _pair_weights(quality: np.ndarray, power: float) -> np.ndarray:
    """quality ** power; every minutia counts 1 where a template reports no quality at all (an ISO
    record from a device that writes 0 for "not reported"), so such a record still matches."""
    q = np.asarray(quality, np.float64)
    if q.size and q.max() <= 0.0:
        return np.ones(q.shape, np.float64)
    return np.ascontiguousarray(q**power)
