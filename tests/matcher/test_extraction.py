"""Minutiae extraction on real FVC images and on crafted patterns."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from fpverify.matcher.features import Features, extract_features, stages
from fpverify.matcher.params import ExtractionParams

DPI = {"fvc2002_db2_b": 569, "fvc2004_db3_b": 512}


def load(datasets_dir, name: str) -> np.ndarray:
    img = cv2.imread(str(datasets_dir / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    assert img is not None, name
    return img


def check_features(f: Features) -> None:
    h, w = f.shape
    m = f.minutiae
    assert m.dtype == np.float32 and m.ndim == 2 and m.shape[1] == 5
    assert np.all((m[:, 0] >= 0) & (m[:, 0] < w) & (m[:, 1] >= 0) & (m[:, 1] < h))
    assert np.all((m[:, 2] >= 0) & (m[:, 2] < 2 * np.pi))
    assert np.all((m[:, 3] >= 0) & (m[:, 3] <= 1))
    assert set(np.unique(m[:, 4])) <= {0.0, 1.0, 2.0}
    assert f.mask.dtype == bool
    assert f.mask.shape == (h // f.mask_block, w // f.mask_block)
    assert f.orientation.shape == f.mask.shape and f.orientation.dtype == np.float32
    assert np.all(np.isnan(f.orientation[~f.mask]))
    on = f.orientation[f.mask]
    assert np.all((on >= 0) & (on < np.pi))
    # every minutia lies on the finger
    cells = (m[:, 1] // f.mask_block).astype(int), (m[:, 0] // f.mask_block).astype(int)
    assert np.all(f.mask[cells])


def test_real_image_plausible(datasets_dir):
    f = extract_features(load(datasets_dir, "fvc2002_db1_b/101_1"))
    check_features(f)
    assert f.shape == (374, 388)
    assert 15 <= len(f.minutiae) <= 120
    assert 0.2 < f.mask.mean() < 0.95
    assert 6.0 < f.ridge_period < 13.0
    kinds = f.minutiae[:, 4]
    assert (kinds == 1).any() and (kinds == 2).any()


@pytest.mark.parametrize(
    "name",
    ["fvc2000_db1_b/103_2", "fvc2000_db2_b/105_1", "fvc2000_db3_b/102_3", "fvc2002_db3_b/107_4",
     "fvc2004_db1_b/104_5", "fvc2004_db2_b/103_3", "fvc2002_db2_b/108_3", "fvc2004_db3_b/101_8"],
)
def test_sets_give_plausible_counts(datasets_dir, name):
    f = extract_features(load(datasets_dir, name), DPI.get(name.split("/")[0], 500))
    check_features(f)
    # some prints in these sets are small, others large and noisy (creases, dry skin): wider bounds,
    # up to the extractor's cap
    assert 10 <= len(f.minutiae) <= ExtractionParams().max_minutiae


def test_resolution_is_normalised(datasets_dir):
    img = load(datasets_dir, "fvc2002_db2_b/101_1")  # 569 dpi, 296 x 560
    f = extract_features(img, dpi=569)
    assert f.shape == (round(560 * 500 / 569), round(296 * 500 / 569))
    assert 7.0 < f.ridge_period < 12.0


def _match_fraction(a: np.ndarray, b: np.ndarray, dist: float = 12.0, angle: float = np.deg2rad(30)) -> float:
    """Share of minutiae in ``a`` with a counterpart in ``b`` (position and direction)."""
    if len(a) == 0:
        return 0.0
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    da = np.abs(np.angle(np.exp(1j * (a[:, None, 2] - b[None, :, 2]))))
    return float(((d < dist) & (da < angle)).any(axis=1).mean())


def test_rotation_by_90_degrees(datasets_dir):
    img = load(datasets_dir, "fvc2002_db1_b/102_3")
    f = extract_features(img)
    r = extract_features(np.ascontiguousarray(np.rot90(img)))  # counter-clockwise
    n, nr = len(f.minutiae), len(r.minutiae)
    assert abs(n - nr) <= max(6, 0.3 * n)
    # map the original minutiae into the rotated frame: (x, y) -> (y, W - 1 - x), angle + 90 deg
    w = img.shape[1]
    moved = f.minutiae.copy()
    moved[:, 0], moved[:, 1] = f.minutiae[:, 1], w - 1 - f.minutiae[:, 0]
    moved[:, 2] = np.mod(f.minutiae[:, 2] + np.pi / 2, 2 * np.pi)
    assert _match_fraction(moved, r.minutiae) >= 0.6


@pytest.mark.parametrize(("polarity", "kind"), [(1, 1), (-1, 2)])
def test_minutia_type_and_direction_convention(polarity, kind):
    """A phase singularity in parallel ridges makes one minutia: one more ridge on its right
    (x > x0) than on its left. With dark ridges it is a ridge ending whose ridge body lies to the
    right; inverting grey levels turns it into a bifurcation whose branches lie to the right.
    Both must point right (ISO angle 0): ending into its ridge, bifurcation between its branches,
    so a minutia keeps its direction when pressure changes its type."""
    h, w = 220, 260
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x0, y0, period = 130.0, 110.0, 9.0
    phase = 2 * np.pi * yy / period + np.arctan2(yy - y0, xx - x0)
    img = np.clip(128 - polarity * 90 * np.cos(phase), 0, 255).astype(np.uint8)
    f = extract_features(img)
    check_features(f)
    assert len(f.minutiae) == 1
    x, y, angle, _, found_kind = f.minutiae[0]
    assert np.hypot(x - x0, y - y0) < 8
    assert found_kind == kind
    assert abs(np.angle(np.exp(1j * angle))) < np.deg2rad(15)


def test_parallel_ridges_have_no_minutiae():
    yy, xx = np.mgrid[0:240, 0:240].astype(np.float32)
    angle = np.deg2rad(30)
    img = 128 + 80 * np.cos(2 * np.pi * (xx * np.sin(angle) + yy * np.cos(angle)) / 9.5)
    f = extract_features(img.astype(np.uint8))
    check_features(f)
    assert len(f.minutiae) <= 2
    assert 8.5 < f.ridge_period < 10.5
    # orientation field follows the ridges: ISO ridge direction = 30 deg (y up) for these ridges
    on = f.orientation[f.mask]
    assert np.median(np.abs(np.angle(np.exp(2j * (on - angle))))) < np.deg2rad(5)


def test_debug_hook_sees_every_stage(datasets_dir):
    img = load(datasets_dir, "fvc2000_db2_b/101_1")
    seen: dict[str, np.ndarray] = {}
    f = extract_features(img, debug=lambda name, im: seen.__setitem__(name, im))
    assert list(seen) == list(stages(ExtractionParams().detector))
    for name, im in seen.items():
        assert im.dtype == np.uint8, name
        assert im.shape[:2] == f.shape, name
    # same result with or without the hook, and deterministic
    g = extract_features(img)
    np.testing.assert_array_equal(f.minutiae, g.minutiae)
    np.testing.assert_array_equal(f.mask, g.mask)


def test_params_are_used(datasets_dir):
    img = load(datasets_dir, "fvc2002_db1_b/101_1")
    every = extract_features(img)
    few = extract_features(img, params=ExtractionParams(max_minutiae=10))
    assert len(every.minutiae) > 10 and len(few.minutiae) == 10
    # the ten kept are the ten best of the full set
    best = np.sort(every.minutiae[:, 3])[::-1][:10]
    np.testing.assert_allclose(np.sort(few.minutiae[:, 3])[::-1], best)
    with pytest.raises(dataclasses.FrozenInstanceError):
        few.ridge_period = 1.0  # type: ignore[misc]
