"""Impressions of a master finger: placement, elastic distortion, pressure, noise, partial contact."""

from __future__ import annotations

import cv2
import numpy as np

from fpverify.matcher.synth.orientation import smooth_noise

ROTATION = (8.0, 20.0)  # degrees: spread (sigma) and limit of an impression's rotation
SHIFT = ((28.0, 32.0), 70.0)  # pixels: spread (sigma x, y) and limit of its translation on the platen
CONTACT = (0.40, 0.56)  # range of the contact ellipse's half axes, as shares of the image's width, height


def _bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = field.shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    return (
        field[y0, x0] * (1 - fx) * (1 - fy)
        + field[y0, x0 + 1] * fx * (1 - fy)
        + field[y0 + 1, x0] * (1 - fx) * fy
        + field[y0 + 1, x0 + 1] * fx * fy
    )


class Placement:
    """Maps impression pixels to master pixels: m = c + R^T (x - c - t) + d(x)  (d: elastic part)."""

    def __init__(self, shape, centre, rng: np.random.Generator, distortion: float) -> None:
        h, w = shape
        self.shape = shape
        self.c = np.array(centre, np.float64)
        self.phi = float(np.clip(rng.normal(0, np.radians(ROTATION[0])), -np.radians(ROTATION[1]), np.radians(ROTATION[1])))
        self.t = np.clip(rng.normal(0, SHIFT[0]), -SHIFT[1], SHIFT[1])
        # elastic part: none in the close-contact core, growing towards the borders (Cappelli's model)
        self.contact = self.c + self.t + rng.normal(0, 10, 2)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot(xx - self.contact[0], yy - self.contact[1]) / (0.5 * max(h, w))
        ramp = np.clip(r - 0.15, 0, None) ** 1.5
        self.dx = (distortion * ramp * smooth_noise(shape, rng, 110)).astype(np.float32)
        self.dy = (distortion * ramp * smooth_noise(shape, rng, 110)).astype(np.float32)
        cos, sin = np.cos(self.phi), np.sin(self.phi)
        rx, ry = xx - self.c[0] - self.t[0], yy - self.c[1] - self.t[1]
        self.map_x = (self.c[0] + cos * rx + sin * ry + self.dx).astype(np.float32)
        self.map_y = (self.c[1] - sin * rx + cos * ry + self.dy).astype(np.float32)

    def warp(self, image: np.ndarray, border_value: float = 0.0) -> np.ndarray:
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, borderValue=border_value)

    def backward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Impression points -> master points."""
        return _bilinear(self.map_x, x, y), _bilinear(self.map_y, x, y)

    def forward(self, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Master points -> impression points (fixed-point inversion of the map; d is small and smooth)."""
        cos, sin = np.cos(self.phi), np.sin(self.phi)
        x, y = mx.astype(np.float64), my.astype(np.float64)
        for _ in range(6):
            ux = mx - _bilinear(self.dx, x, y) - self.c[0]
            uy = my - _bilinear(self.dy, x, y) - self.c[1]
            x = self.c[0] + self.t[0] + cos * ux - sin * uy
            y = self.c[1] + self.t[1] + sin * ux + cos * uy
        return x, y


def placement(master, k: int, seed: int) -> Placement:
    """How impression k lies on the platen (its own random stream, so tests can rebuild it)."""
    rng = np.random.default_rng([master.seed, k, seed, 0x1F, 1])
    return Placement(master.pattern.shape, master.centre, rng, distortion=rng.uniform(3.0, 9.0))


def render(master, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([master.seed, k, seed, 0x1F, 2])
    h, w = master.pattern.shape
    place = placement(master, k, seed)
    pattern = place.warp(master.pattern)
    finger = place.warp(master.mask)

    # partial contact: the part of the finger pressed onto the platen, an ellipse with a soft edge
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = place.contact + rng.normal(0, 12, 2)
    ax, ay = rng.uniform(*CONTACT) * w, rng.uniform(*CONTACT) * h
    contact = np.clip((1 - ((xx - cx) / ax) ** 2 - ((yy - cy) / ay) ** 2) * 5, 0, 1) * finger

    # pressure: dry fingers print thin, broken ridges; wet ones thick, merged ridges
    level = rng.uniform(-0.35, 0.35) + 0.15 * smooth_noise((h, w), rng, 60)
    ink = np.clip((pattern - level) * 1.8 + 0.5, 0, 1)
    dryness = max(0.0, float(rng.normal(0.15, 0.15)))
    if dryness > 0:
        pores = smooth_noise((h, w), rng, 5)
        ink *= np.clip(1 - dryness * np.clip(pores, 0, None) * 2, 0, 1)
    ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.6, 1.1))

    background = rng.uniform(200, 245) + 8 * smooth_noise((h, w), rng, 150)
    contrast = rng.uniform(130, 190) * (0.75 + 0.25 * contact)
    image = background - contrast * ink * contact
    image += rng.normal(0, rng.uniform(3, 10), (h, w))
    image = np.clip(image, 0, 255).astype(np.uint8)

    # ground truth: master minutiae carried through the same mapping, kept where the print shows them
    m = master.minutiae
    if len(m) == 0:
        return image, np.zeros((0, 4), np.float32)
    x, y = place.forward(m[:, 0], m[:, 1])
    # local angle change: map a point a few pixels along each minutia's direction too
    step = 4.0
    ax_, ay_ = place.forward(m[:, 0] + step * np.cos(m[:, 2]), m[:, 1] - step * np.sin(m[:, 2]))
    angle = np.mod(np.arctan2(-(ay_ - y), ax_ - x), 2 * np.pi)
    inside = (x >= 8) & (x < w - 8) & (y >= 8) & (y < h - 8)
    seen = inside & (_bilinear(contact, x, y) > 0.6)
    out = np.stack([x, y, angle, m[:, 3]], axis=1)[seen].astype(np.float32)
    return image, out
