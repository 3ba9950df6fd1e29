"""Ground-truth minutiae of a master pattern: thinning, crossing number, clean-up, angles.

Angles follow the team's ISO 19794-2 convention (radians, counter-clockwise from x, image y down).
A ridge ending points the way its ridge runs out (from the ridge body towards the free end); a
bifurcation points the way its ridge runs into the fork (from the single stem towards the two
branches), so both read "the ridge flows along this angle and then ends / splits".
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


def _trace(skeleton: np.ndarray, y: int, x: int, first: tuple[int, int], steps: int) -> tuple[int, int]:
    """Walk along the skeleton from (y, x) through neighbour `first` for up to `steps` pixels."""
    h, w = skeleton.shape
    prev, cur = (y, x), first
    for _ in range(steps - 1):
        nxt = None
        for dy, dx in _OFFSETS:
            q = (cur[0] + dy, cur[1] + dx)
            if q != prev and q != (y, x) and 0 <= q[0] < h and 0 <= q[1] < w and skeleton[q]:
                nxt = q
                break
        if nxt is None:
            break
        prev, cur = cur, nxt
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


def _angle(to_y: float, to_x: float, from_y: float, from_x: float) -> float:
    return float(np.mod(np.arctan2(-(to_y - from_y), to_x - from_x), 2 * np.pi))


def detect(pattern: np.ndarray, valid: np.ndarray, period: float = 9.0) -> np.ndarray:
    """Minutiae of a continuous ridge pattern (ridges > 0) where `valid` is True: (N, 4) x, y, angle, type."""
    skeleton = thin(pattern > 0)
    cn = crossing_number(skeleton)
    ys, xs = np.nonzero(((cn == 1) | (cn == 3)) & valid)
    steps = max(4, int(round(period * 0.9)))
    found = []
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        branches = _branch_starts(skeleton, y, x)
        if cn[y, x] == 1 and len(branches) == 1:
            ey, ex = _trace(skeleton, y, x, branches[0], steps)
            found.append((x, y, _angle(y, x, ey, ex), ENDING))
        elif cn[y, x] == 3 and len(branches) == 3:
            ends = [_trace(skeleton, y, x, b, steps) for b in branches]
            dirs = [np.arctan2(ey - y, ex - x) for ey, ex in ends]
            # the stem is the branch farthest in direction from the other two
            gaps = []
            for i in range(3):
                others = [dirs[j] for j in range(3) if j != i]
                gaps.append(sum(abs(np.angle(np.exp(1j * (dirs[i] - o)))) for o in others))
            sy, sx = ends[int(np.argmax(gaps))]
            found.append((x, y, _angle(y, x, sy, sx), BIFURCATION))
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
