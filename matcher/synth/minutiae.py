"""Ground-truth minutiae of a master pattern: thinning, crossing number, clean-up, angles.

Angles follow the team's ISO 19794-2 convention (radians, counter-clockwise from x, image y down).
As in matcher/features.py: a ridge ending points into its ridge (away from the free end); a
bifurcation points between its two branches (away from the stem), so the two kinds agree when
pressure turns one into the other.
"""

from __future__ import annotations

import cv2
import numpy as np

ENDING, BIFURCATION = 1, 2
_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))  # P2..P9 clockwise


def _neighbours(b: np.ndarray) -> list[np.ndarray]:
    p = np.pad(b, 1)
    h, w = b.shape
    return [p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _OFFSETS]


def thin(binary: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to one-pixel-wide, 8-connected lines."""
    img = binary.astype(np.uint8).copy()
    while True:
        changed = False
        for step in (0, 1):
            n = _neighbours(img)
            count = sum(n)
            transitions = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            p2, _, p4, _, p6, _, p8, _ = n
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (img == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & cond
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            return img.astype(bool)


def crossing_number(skeleton: np.ndarray) -> np.ndarray:
    n = [x.astype(np.int8) for x in _neighbours(skeleton.astype(np.uint8))]
    cn = sum(np.abs(n[i] - n[(i + 1) % 8]) for i in range(8)) // 2
    return np.where(skeleton, cn, 0)


def _trace(skeleton: np.ndarray, start: tuple[int, int], visited: set, steps: int) -> tuple[int, int]:
    """Walk along the skeleton from `start` for up to `steps` pixels, never re-entering `visited`."""
    h, w = skeleton.shape
    cur = start
    seen = set(visited) | {start}
    for _ in range(steps - 1):
        nxt = None
        for dy, dx in _OFFSETS:
            q = (cur[0] + dy, cur[1] + dx)
            if q not in seen and 0 <= q[0] < h and 0 <= q[1] < w and skeleton[q]:
                nxt = q
                break
        if nxt is None:
            break
        seen.add(nxt)
        cur = nxt
    return cur


def _branch_starts(skeleton: np.ndarray, y: int, x: int) -> list[tuple[int, int]]:
    """First pixel of each skeleton branch leaving (y, x)."""
    h, w = skeleton.shape

    def on(i: int) -> bool:
        dy, dx = _OFFSETS[i % 8]
        return 0 <= y + dy < h and 0 <= x + dx < w and bool(skeleton[y + dy, x + dx])

    out = []
    for i, (dy, dx) in enumerate(_OFFSETS):
        # a diagonal neighbour that touches a set orthogonal neighbour continues that same branch
        if on(i) and not (i % 2 == 1 and (on(i - 1) or on(i + 1))):
            out.append((y + dy, x + dx))
    return out


def detect(
    pattern: np.ndarray, valid: np.ndarray, period: float = 9.0, orientation: np.ndarray | None = None
) -> np.ndarray:
    """Minutiae of a continuous ridge pattern (ridges > 0) where `valid` is True: (N, 4) x, y, angle, type.

    The skeleton gives each minutia's sense; the (smooth) orientation field, when given, its precise
    angle.
    """
    skeleton = thin(pattern > 0)
    cn = crossing_number(skeleton)
    ys, xs = np.nonzero(((cn == 1) | (cn == 3)) & valid)
    steps = max(4, int(round(period * 0.9)))
    found = []
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        branches = _branch_starts(skeleton, y, x)
        kind = ENDING if cn[y, x] == 1 else BIFURCATION
        if len(branches) != (1 if kind == ENDING else 3):
            continue
        visited = {(y, x), *branches}
        ends = [_trace(skeleton, b, visited - {b}, steps) for b in branches]
        # sum of unit vectors towards the branch ends: into the ridge for an ending; for a fork the
        # two branches outweigh the stem, so it points between the branches, away from the stem
        vx = vy = 0.0
        for ey, ex in ends:
            n = np.hypot(ey - y, ex - x) or 1.0
            vx, vy = vx + (ex - x) / n, vy + (ey - y) / n
        angle = float(np.arctan2(-vy, vx))
        if orientation is not None:
            theta = float(orientation[y, x])
            angle = theta if np.cos(angle - theta) >= 0 else theta + np.pi
        found.append((x, y, float(np.mod(angle, 2 * np.pi)), kind))
    return _clean(np.array(found, np.float32).reshape(-1, 4), period)


def _clean(m: np.ndarray, period: float) -> np.ndarray:
    """Drop pairs closer than ~0.8 ridge period: spurs, short breaks, bridges and thinning artefacts."""
    if len(m) < 2:
        return m
    d = np.hypot(m[:, None, 0] - m[None, :, 0], m[:, None, 1] - m[None, :, 1])
    np.fill_diagonal(d, np.inf)
    keep = d.min(axis=1) > 0.8 * period
    return m[keep]


def reliable_region(pattern: np.ndarray, mask: np.ndarray, margin: int) -> np.ndarray:
    """Where the master's ridges are well formed (strong, binary-like) and away from the finger's edge."""
    strength = cv2.GaussianBlur(np.abs(pattern), (0, 0), 4)
    inner = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return (strength > 0.55) & inner.astype(bool)
