"""Unusable input must fail early with a clear ValueError, never deep inside the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpverify.matcher.features import extract_features
from fpverify.matcher.quality import quality


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


BAD = [
    (np.zeros((0, 0), np.uint8), 500, "empty"),
    (np.zeros((0, 300), np.uint8), 500, "empty"),
    (np.full((300, 300), 200, np.uint8), 500, "constant"),
    (np.zeros((300, 300), np.uint8), 500, "constant"),
    (noise(10, 10), 500, "too small"),
    (noise(300, 40), 500, "too small"),
    (noise(100, 100), 1000, "too small"),  # 50 px at 500 dpi
    (noise(5000, 5000), 500, "too large"),
    (noise(1200, 1200), 250, "too large"),  # 2400 px at 500 dpi
    (noise(300, 300).astype(np.float32), 500, "uint8"),
    (np.full((300, 300), np.nan, np.float32), 500, "NaN"),
    (np.where(noise(300, 300) > 128, np.inf, 1.0), 500, "NaN or infinite"),
    (noise(300, 300).astype(np.uint16) * 200, 500, "uint8"),
    (noise(300, 300).astype(np.int16), 500, "uint8"),
    (noise(300, 300) > 128, 500, "uint8"),
    (np.stack([noise(300, 300)] * 3, axis=-1), 500, "2-D"),
    (noise(300, 300)[None], 500, "2-D"),
    (noise(300, 300).tolist(), 500, "numpy array"),
    (None, 500, "numpy array"),
    (b"\x89PNG....", 500, "numpy array"),
    (noise(300, 300), 100, "dpi"),
    (noise(300, 300), 2400, "dpi"),
    (noise(300, 300), 0, "dpi"),
    (noise(300, 300), "500", "dpi"),
    (noise(300, 300), 500.0, "dpi"),
    (noise(300, 300), True, "dpi"),
]


@pytest.mark.parametrize(("image", "dpi", "message"), BAD, ids=[f"{i}-{m}" for i, (_, _, m) in enumerate(BAD)])
def test_extract_rejects(image, dpi, message):
    with pytest.raises(ValueError, match=message):
        extract_features(image, dpi)


@pytest.mark.parametrize(("image", "dpi", "message"), [b for b in BAD if b[2] != "constant"])
def test_quality_rejects_malformed(image, dpi, message):
    with pytest.raises(ValueError, match=message):
        quality(image, dpi)


def test_input_is_not_modified():
    img = noise(200, 220, seed=3)
    before = img.copy()
    extract_features(img)
    np.testing.assert_array_equal(img, before)


def test_non_contiguous_and_odd_sizes_work():
    img = noise(401, 333, seed=4)[::-1, 1:]  # negative strides, odd shape
    f = extract_features(img)
    assert f.shape == (401, 332)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(64, 260),
    w=st.integers(64, 260),
    dpi=st.sampled_from([300, 500, 569, 700]),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["noise", "blocks", "gradient"]),
)
def test_arbitrary_images_never_crash(h, w, dpi, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "blocks":
        img = np.kron(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1)), np.ones((8, 8)))[:h, :w].astype(np.uint8)
    else:
        img = np.linspace(0, 255, h * w).reshape(h, w).astype(np.uint8)
    try:
        f = extract_features(img, dpi)
    except ValueError as exc:  # only size (after resizing) or blankness may be refused
        assert "too small" in str(exc) or "constant" in str(exc)
        return
    assert f.minutiae.shape[1] == 5
    assert np.all(np.isfinite(f.minutiae))
