"""From the enhanced image to filtered minutiae.

binarise -> thin (Zhang-Suen with 3x3 lookup tables, vectorised) -> skeleton cleanup (spurs,
short ridges, bridges, as a graph of skeleton segments between junctions) -> crossing number
-> direction (own-ridge pixel moments, refined with the orientation field) -> false-minutia
filters (mask border, ridge breaks, close pairs, clusters) -> per-minutia quality.

Coordinates here are pixels of the processed image; angles are image coordinates
(atan2(dy, dx), y down). Conversion to the ISO convention happens in features.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from fpverify.matcher.params import ExtractionParams

ENDING, BIFURCATION, OTHER = 1, 2, 0

# (x, y) pixel arrays -> values there (ridge direction, coherence)
FieldAt = Callable[[np.ndarray, np.ndarray], np.ndarray]

# neighbour code bits, in ring order N, NE, E, SE, S, SW, W, NW
_CODE_KERNEL = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)
_CODE_KERNEL.setflags(write=False)
_CROSS = np.ones((3, 3), np.uint8)
_CROSS.setflags(write=False)


@dataclass(frozen=True)
class Minutiae:
    x: np.ndarray  # float32 pixels
    y: np.ndarray
    angle: np.ndarray  # radians, image coordinates, [0, 2*pi)
    quality: np.ndarray  # [0, 1]
    kind: np.ndarray  # int: ENDING, BIFURCATION, OTHER

    def __len__(self) -> int:
        return int(self.x.size)

    def take(self, keep: np.ndarray) -> Minutiae:
        return Minutiae(self.x[keep], self.y[keep], self.angle[keep], self.quality[keep], self.kind[keep])


def _bits(code: np.ndarray) -> list[np.ndarray]:
    return [(code >> i) & 1 for i in range(8)]


@lru_cache(maxsize=1)
def _tables() -> dict[str, np.ndarray]:
    """Lookup tables indexed by the 8-bit neighbour code."""
    code = np.arange(256)
    p = _bits(code)  # p[0]=N, p[1]=NE, p[2]=E, p[3]=SE, p[4]=S, p[5]=SW, p[6]=W, p[7]=NW
    count = sum(p)
    trans = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(int) for i in range(8))
    n, e, s, w = p[0], p[2], p[4], p[6]
    base = (count >= 2) & (count <= 6) & (trans == 1)
    zs1 = base & (n * e * s == 0) & (e * s * w == 0)
    zs2 = base & (n * e * w == 0) & (n * s * w == 0)
    # Yokoi 8-connectivity number: 1 means removing the pixel keeps its neighbours connected
    ring = [p[2], p[1], p[0], p[7], p[6], p[5], p[4], p[3]]  # E, NE, N, NW, W, SW, S, SE
    inv = [1 - r for r in ring]
    yokoi = sum(inv[k] - inv[k] * inv[(k + 1) % 8] * inv[(k + 2) % 8] for k in (0, 2, 4, 6))
    corner = (n & e) | (e & s) | (s & w) | (w & n)
    stair = (count >= 2) & (yokoi == 1) & (corner == 1)
    out = {
        "count": count.astype(np.uint8),
        "trans": trans.astype(np.uint8),
        "zs1": zs1,
        "zs2": zs2,
        "stair": stair,
    }
    for arr in out.values():
        arr.setflags(write=False)
    return out


def neighbour_code(binary: np.ndarray) -> np.ndarray:
    """8-bit code of the 3x3 neighbourhood of every pixel (exact: the weights sum to 255)."""
    return cv2.filter2D(binary.astype(np.uint8), cv2.CV_8U, _CODE_KERNEL, borderType=cv2.BORDER_CONSTANT)


def binarise(enhanced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Ridges are dark in the normalised image, so negative after the even Gabor filter."""
    ridges = (enhanced < 0) & mask
    # drop specks and pinholes one pixel across
    r8 = ridges.astype(np.uint8)
    r8 = cv2.morphologyEx(r8, cv2.MORPH_OPEN, _CROSS[:2, :2].copy())
    r8 = cv2.morphologyEx(r8, cv2.MORPH_CLOSE, _CROSS[:2, :2].copy())
    return r8.astype(bool) & mask


def thin(binary: np.ndarray, max_iterations: int = 30) -> np.ndarray:
    """Zhang-Suen thinning, then removal of staircase pixels so the skeleton is one pixel wide
    in the 8-connected sense (which the crossing number needs)."""
    t = _tables()
    zs1, zs2 = t["zs1"].astype(np.uint8), t["zs2"].astype(np.uint8)
    img = binary.astype(np.uint8)
    for _ in range(max_iterations):
        changed = False
        for table in (zs1, zs2):
            delete = cv2.LUT(neighbour_code(img), table) & img
            if cv2.countNonZero(delete):
                img -= delete
                changed = True
        if not changed:
            break
    # staircase cleanup in two checkerboard passes so neighbours are never removed together
    yy, xx = np.indices(img.shape, sparse=True)
    parity = ((yy + xx) & 1).astype(np.uint8)
    stair = t["stair"].astype(np.uint8)
    for par in (parity ^ 1, parity):
        img -= cv2.LUT(neighbour_code(img), stair) & img & par
    return img.astype(bool)


def _segment_direction(
    labels: np.ndarray, n: int, ys: np.ndarray, xs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label: centroid (cx, cy) and principal axis angle (mod pi) from pixel moments."""
    lab = labels[ys, xs]
    cnt = np.maximum(np.bincount(lab, minlength=n), 1)
    sx = np.bincount(lab, xs, minlength=n)
    sy = np.bincount(lab, ys, minlength=n)
    cx, cy = sx / cnt, sy / cnt
    sxx = np.bincount(lab, xs * xs, minlength=n) / cnt - cx * cx
    syy = np.bincount(lab, ys * ys, minlength=n) / cnt - cy * cy
    sxy = np.bincount(lab, xs * ys, minlength=n) / cnt - cx * cy
    return cx, cy, np.mod(0.5 * np.arctan2(2 * sxy, sxx - syy), np.pi)


def _angle_diff_mod_pi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.mod(a - b, np.pi)
    return np.minimum(d, np.pi - d)


def clean_skeleton(skeleton: np.ndarray, angle_at: FieldAt, params: ExtractionParams) -> np.ndarray:
    """Remove spurs, short isolated ridges, bridges and junction stubs.

    The skeleton is cut at its junctions into segments; each segment is classified by how
    many of its tips are free ridge endings and how long it is. Per-segment figures come from
    connected-component statistics and the (few) tip pixels, not from whole-image passes.
    """
    t = _tables()
    count_lut, trans_lut = t["count"], t["trans"]
    skel = skeleton.astype(np.uint8)
    bridge_angle = np.deg2rad(params.bridge_angle_deg)
    for _ in range(4):
        code = neighbour_code(skel)
        count = cv2.LUT(code, count_lut)
        trans = cv2.LUT(code, trans_lut)
        on = skel.astype(bool)
        end = on & (trans == 1)
        junction = (on & (trans >= 3)).astype(np.uint8)
        zone = cv2.dilate(junction, _CROSS).astype(bool) & on
        seg = on & ~zone
        seg8 = seg.astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(seg8, connectivity=8)
        if n <= 1:
            break
        length = stats[:, cv2.CC_STAT_AREA]
        seg_count = cv2.LUT(neighbour_code(seg8), count_lut)
        ty, tx = np.nonzero(seg & (seg_count <= 1))
        tl = labels[ty, tx]
        free = np.bincount(tl[end[ty, tx]], minlength=n)
        # a lone pixel is a tip at both ends
        tip_count = np.bincount(tl, minlength=n) + np.bincount(tl[seg_count[ty, tx] == 0], minlength=n)
        joined = tip_count - free

        spur = (free == 1) & (joined >= 1) & (length < params.spur_length)
        short = (free >= 2) & (length < params.short_ridge_length)
        bridge = (free == 0) & (joined == 2) & (length < params.bridge_length)
        bridge[0] = False
        cand = np.flatnonzero(bridge)
        if cand.size:
            # a bridge runs across the ridge flow: direction from one tip to the other
            order = np.argsort(tl, kind="stable")
            sl, sx, sy = tl[order], tx[order].astype(np.float32), ty[order].astype(np.float32)
            first = np.searchsorted(sl, cand, "left")
            last = np.searchsorted(sl, cand, "right") - 1
            seg_angle = np.mod(np.arctan2(sy[last] - sy[first], sx[last] - sx[first]), np.pi)
            mx, my = (sx[first] + sx[last]) / 2, (sy[first] + sy[last]) / 2
            across = _angle_diff_mod_pi(seg_angle, angle_at(mx, my)) > bridge_angle
            bridge[cand] = across | (first == last)
        drop_label = spur | short | bridge
        drop_label[0] = False
        delete = end & zone  # stubs left where a spur was cut off at its junction
        delete |= on & (count == 0)  # isolated dots
        if drop_label.any():
            delete |= drop_label[labels] & seg
        if not delete.any():
            break
        skel[delete] = 0
    return skel.astype(bool)


def detect(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crossing-number minutiae: (x, y, kind). Junction pixel clusters become one minutia."""
    t = _tables()
    code = neighbour_code(skeleton)
    trans = t["trans"][code]
    end = skeleton & (trans == 1)
    junction = skeleton & (trans >= 3)
    ey, ex = np.nonzero(end)
    n, labels, _, centroids = cv2.connectedComponentsWithStats(junction.astype(np.uint8), connectivity=8)
    jx, jy = centroids[1:, 0], centroids[1:, 1]
    if n > 1:
        max_trans = np.zeros(n, np.int32)
        jys, jxs = np.nonzero(junction)
        np.maximum.at(max_trans, labels[jys, jxs], trans[jys, jxs])
        jkind = np.where(max_trans[1:] == 3, BIFURCATION, OTHER)
    else:
        jkind = np.zeros(0, np.int32)
    x = np.concatenate([ex.astype(np.float32), jx.astype(np.float32)])
    y = np.concatenate([ey.astype(np.float32), jy.astype(np.float32)])
    kind = np.concatenate([np.full(ex.size, ENDING, np.int32), jkind.astype(np.int32)])
    return x, y, kind


@lru_cache(maxsize=4)
def _disc_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = (dx * dx + dy * dy <= radius * radius) & ((dx != 0) | (dy != 0))
    dx, dy = (dx * disc).astype(np.float32), (dy * disc).astype(np.float32)
    dx.setflags(write=False)
    dy.setflags(write=False)
    return dx, dy


def directions(
    skeleton: np.ndarray, x: np.ndarray, y: np.ndarray, angle_at: FieldAt, params: ExtractionParams
) -> np.ndarray:
    """Minutia direction: the ridge orientation at the point, pointing toward where its own
    ridge pixels lie (into the ridge for an ending, between the branches for a bifurcation).
    Tracing gives the sign, the smoothed orientation field the precise angle."""
    r = params.direction_radius
    _, labels = cv2.connectedComponents(skeleton.astype(np.uint8), connectivity=8)
    padded = cv2.copyMakeBorder(labels.astype(np.int32), r, r, r, r, cv2.BORDER_CONSTANT, value=0)
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    oy, ox = np.mgrid[0 : 2 * r + 1, 0 : 2 * r + 1]
    patches = padded[yi[:, None, None] + oy, xi[:, None, None] + ox]  # (N, 2r+1, 2r+1)
    # the minutia's own ridge: the most common label in its 3x3 centre
    centre = patches[:, r - 1 : r + 2, r - 1 : r + 2].reshape(len(x), -1)
    own = np.where(centre.max(axis=1) > 0, centre.max(axis=1), -1)
    mine = patches == own[:, None, None]
    dx, dy = _disc_offsets(r)
    sx = (mine * dx).sum(axis=(1, 2))
    sy = (mine * dy).sum(axis=(1, 2))
    theta = angle_at(x, y)
    proj = sx * np.cos(theta) + sy * np.sin(theta)
    out = np.where(proj >= 0, theta, theta + np.pi)
    return np.mod(out, 2 * np.pi).astype(np.float32)


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])


def remove_false(m: Minutiae, border_dist: np.ndarray, period: float,
                 params: ExtractionParams) -> Minutiae:
    """Border, ridge-break pairs, close pairs and dense clusters."""
    xi, yi = np.round(m.x).astype(int), np.round(m.y).astype(int)
    m = m.take(border_dist[yi, xi] >= params.border_margin)
    if len(m) < 2:
        return m
    d = _pairwise(m.x, m.y)
    np.fill_diagonal(d, np.inf)
    drop = np.zeros(len(m), bool)

    # ridge breaks: two endings facing each other along the ridge flow
    ends = np.nonzero(m.kind == ENDING)[0]
    if ends.size >= 2:
        de = d[np.ix_(ends, ends)]
        ax, ay, aa = m.x[ends], m.y[ends], m.angle[ends]
        tol = np.deg2rad(params.break_angle_deg)
        opposite = np.abs(np.angle(np.exp(1j * (aa[:, None] - aa[None, :] - np.pi)))) < tol
        link = np.arctan2(ay[None, :] - ay[:, None], ax[None, :] - ax[:, None])
        # a's ridge lies behind it: b must be in front, along -direction of a
        facing = np.cos(link - (aa[:, None] + np.pi)) > np.cos(tol)
        pair = (de < params.break_distance * period) & opposite & facing & facing.T
        drop[ends] |= pair.any(axis=1)

    # close pairs of any kind
    drop |= (d < params.close_pair_distance).any(axis=1)
    # clusters (noise, scars)
    drop |= (d < params.cluster_radius).sum(axis=1) > params.cluster_max
    return m.take(~drop)


def minutia_quality(m: Minutiae, border_dist: np.ndarray, reliability_at: FieldAt,
                    params: ExtractionParams) -> np.ndarray:
    """Local ridge reliability (0..1) times a ramp on the distance to the mask border."""
    xi, yi = np.round(m.x).astype(int), np.round(m.y).astype(int)
    c = np.clip(reliability_at(m.x, m.y), 0, 1)
    b = np.clip(border_dist[yi, xi] / params.quality_border_px, 0, 1)
    return (c * np.sqrt(b)).astype(np.float32)


def extract_minutiae(
    skeleton: np.ndarray,
    border_dist: np.ndarray,
    angle_at: FieldAt,
    reliability_at: FieldAt,
    period: float,
    params: ExtractionParams,
) -> Minutiae:
    """`border_dist`: distance to the mask's edge (segmentation.border_distance)."""
    x, y, kind = detect(skeleton)
    empty = np.zeros(0, np.float32)
    if x.size == 0:
        return Minutiae(empty, empty, empty, empty, np.zeros(0, np.int32))
    angle = directions(skeleton, x, y, angle_at, params)
    m = Minutiae(x, y, angle, np.zeros_like(x), kind)
    m = remove_false(m, border_dist, period, params)
    q = minutia_quality(m, border_dist, reliability_at, params)
    m = Minutiae(m.x, m.y, m.angle, q, m.kind)
    m = m.take(q >= params.min_quality)
    if len(m) > params.max_minutiae:
        m = m.take(np.argsort(-m.quality, kind="stable")[: params.max_minutiae])
    return m
