"""Synthetic minutiae sets for matcher tests: a random 'finger' and noisy rigidly moved impressions."""

from __future__ import annotations

import numpy as np

from fpverify.matcher.template import Template

SHAPE = (400, 320)


def finger(rng: np.random.Generator, n: int = 45, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """(n, 5) minutiae at least 10 px apart inside an ellipse filling the image."""
    h, w = shape
    pts: list[tuple[float, ...]] = []
    while len(pts) < n:
        x, y = rng.uniform(20, w - 20), rng.uniform(20, h - 20)
        if ((x - w / 2) / (w / 2 - 15)) ** 2 + ((y - h / 2) / (h / 2 - 15)) ** 2 > 1:
            continue
        if all((x - a) ** 2 + (y - b) ** 2 > 100 for a, b, *_ in pts):
            pts.append((x, y, rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0), float(rng.integers(1, 3))))
    return np.array(pts)


def move(m: np.ndarray, angle: float, tx: float, ty: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Rotate about the image centre (counter-clockwise on screen, ISO angles grow) and shift."""
    h, w = shape
    c, s = np.cos(angle), np.sin(angle)
    x, y = m[:, 0] - w / 2, m[:, 1] - h / 2
    out = m.copy()
    out[:, 0] = c * x + s * y + w / 2 + tx
    out[:, 1] = -s * x + c * y + h / 2 + ty
    out[:, 2] = (m[:, 2] + angle) % (2 * np.pi)
    return out


def impression(
    rng: np.random.Generator,
    m: np.ndarray,
    shape: tuple[int, int] = SHAPE,
    rot: float = 0.4,
    shift: float = 30.0,
    noise: float = 2.0,
    drop: float = 0.2,
    spurious: float = 0.1,
) -> Template:
    h, w = shape
    out = move(m, rng.uniform(-rot, rot), *rng.uniform(-shift, shift, 2), shape=shape)
    out[:, :2] += rng.normal(0, noise, (len(out), 2))
    out[:, 2] = (out[:, 2] + rng.normal(0, 0.1, len(out))) % (2 * np.pi)
    out = out[rng.random(len(out)) > drop]
    k = int(spurious * len(m))
    sp = np.stack(
        [rng.uniform(0, w, k), rng.uniform(0, h, k), rng.uniform(0, 2 * np.pi, k), rng.uniform(0.1, 0.5, k),
         rng.integers(1, 3, k).astype(float)],
        axis=1,
    )  # fmt: skip
    out = np.concatenate([out, sp])
    out = out[(out[:, 0] >= 0) & (out[:, 0] < w) & (out[:, 1] >= 0) & (out[:, 1] < h)]
    return Template(out, shape)
