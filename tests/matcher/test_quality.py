"""Capture quality: score and retake reasons on real and crafted images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fpverify.matcher.quality import FEW_MINUTIAE, LOW_CONTRAST, NO_FINGER, SMALL_AREA, QualityReport, quality


@pytest.fixture
def good_image(datasets_dir) -> np.ndarray:
    img = cv2.imread(str(datasets_dir / "fvc2002_db1_b" / "103_1.png"), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    return img


def test_good_capture_scores_high(good_image):
    r = quality(good_image)
    assert isinstance(r, QualityReport)
    assert r.reasons == ()
    assert r.score >= 60
    assert r.minutiae >= 15
    assert 0.2 < r.area_fraction <= 1.0
    assert r.contrast > 0.3


def test_small_area(good_image):
    # keep only a 110 x 110 patch of the print, the rest is sensor background
    img = np.full_like(good_image, int(np.percentile(good_image, 99)))
    cy, cx = good_image.shape[0] // 2, good_image.shape[1] // 2
    img[cy - 55 : cy + 55, cx - 55 : cx + 55] = good_image[cy - 55 : cy + 55, cx - 55 : cx + 55]
    r = quality(img)
    assert SMALL_AREA in r.reasons
    assert r.score < 40
    assert r.score < quality(good_image).score


def test_low_contrast(good_image):
    # squeeze the grey levels into 20 of 256 (pressed lightly / dirty window)
    faint = (118 + good_image.astype(np.float32) * (20 / 255)).astype(np.uint8)
    r = quality(faint)
    assert LOW_CONTRAST in r.reasons
    assert r.contrast < 0.15
    assert r.score < 40


def test_too_few_minutiae():
    # clean parallel ridges: a finger-like texture without minutiae
    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    img = (128 + 90 * np.cos(2 * np.pi * (0.6 * xx + 0.8 * yy) / 9.0)).astype(np.uint8)
    r = quality(img)
    assert FEW_MINUTIAE in r.reasons
    assert r.minutiae < 12
    assert r.score < 40


def test_blank_frame_is_no_finger():
    r = quality(np.full((288, 256), 230, np.uint8))
    assert r.reasons == (NO_FINGER,)
    assert r.score == 0 and r.minutiae == 0


def test_noise_is_not_a_good_finger():
    img = np.random.default_rng(1).integers(0, 256, (288, 256), dtype=np.uint8)
    r = quality(img)
    assert r.score < 40
    assert r.reasons
