import json
import subprocess
import sys

import numpy as np
import pytest

from fpverify.matcher import synth
from fpverify.matcher.synth import minutiae as mn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def master():
    return synth.generate_finger(11, kind="right_loop")


def test_same_seed_same_finger_and_images(master):
    again = synth.generate_finger(11, kind="right_loop")
    assert np.array_equal(master.pattern, again.pattern)
    assert np.array_equal(master.minutiae, again.minutiae)
    a, ma = synth.impression(master, 2, seed=5)
    b, mb = synth.impression(again, 2, seed=5)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    c, _ = synth.impression(master, 3, seed=5)
    assert not np.array_equal(a, c)
    other = synth.generate_finger(12, kind="right_loop")
    assert not np.array_equal(master.pattern, other.pattern)


@pytest.mark.parametrize("kind", synth.CLASSES)
def test_every_class_looks_like_a_fingerprint(kind):
    m = synth.generate_finger(3, kind=kind)
    assert m.kind == kind
    inside = m.mask > 0.9
    # ridges are binary-like and cover the finger: few undecided (grey) pixels
    assert np.mean(np.abs(m.pattern[inside]) > 0.5) > 0.85
    ridge_share = np.mean(m.pattern[inside] > 0)
    assert 0.35 < ridge_share < 0.65
    # plausible ground truth: a real 500-dpi finger of this size has a few dozen minutiae
    assert 15 <= len(m.minutiae) <= 120, len(m.minutiae)
    types = set(m.minutiae[:, 3].astype(int).tolist())
    assert types == {mn.ENDING, mn.BIFURCATION}
    assert ((m.minutiae[:, 2] >= 0) & (m.minutiae[:, 2] < 2 * np.pi)).all()
    assert len(m.cores) == {"arch": 0, "tented_arch": 1, "left_loop": 1, "right_loop": 1, "whorl": 2}[kind]


def test_ridge_spacing_is_realistic(master):
    # dominant spatial frequency of 64x64 patches inside the finger: period ~ 8-12 px at 500 dpi
    periods = []
    h, w = master.pattern.shape
    yy, xx = np.mgrid[-32:32, -32:32]
    radius = np.hypot(yy, xx)
    for y in range(64, h - 128, 48):
        for x in range(48, w - 112, 48):
            if master.mask[y : y + 64, x : x + 64].min() < 0.9:
                continue
            spectrum = np.abs(np.fft.fftshift(np.fft.fft2(master.pattern[y : y + 64, x : x + 64])))
            spectrum[radius < 3] = 0
            peak = radius.flat[int(np.argmax(spectrum))]
            periods.append(64 / peak)
    assert len(periods) >= 6
    assert 8.0 <= float(np.median(periods)) <= 11.5, periods


def test_impression_image_and_ground_truth(master):
    image, gt = synth.impression(master, 0)
    assert image.dtype == np.uint8 and image.shape == synth.SHAPE
    assert image.std() > 25  # ridges visible
    assert gt.dtype == np.float32 and gt.shape[1] == 4
    assert 0.3 * len(master.minutiae) <= len(gt) <= len(master.minutiae)
    h, w = image.shape
    assert ((gt[:, 0] >= 0) & (gt[:, 0] < w) & (gt[:, 1] >= 0) & (gt[:, 1] < h)).all()
    # every ground-truth minutia lies on the printed finger: darker-than-background ridges nearby
    for x, y, _, _ in gt:
        patch = image[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7]
        assert patch.min() < image.max() - 40


def _match(a: np.ndarray, b: np.ndarray, dist: float, angle: float) -> int:
    """Greedy one-to-one pairing within dist pixels and angle radians."""
    used, pairs = set(), 0
    for x, y, t, _ in a:
        d = np.hypot(b[:, 0] - x, b[:, 1] - y)
        da = np.abs(np.angle(np.exp(1j * (b[:, 2] - t))))
        for j in np.argsort(d):
            if d[j] > dist:
                break
            if j not in used and da[j] <= angle:
                used.add(j)
                pairs += 1
                break
    return pairs


def test_impressions_differ_but_share_minutiae_after_transform(master):
    from fpverify.matcher.synth.impression import placement

    (img1, gt1), (img2, gt2) = synth.impression(master, 0), synth.impression(master, 1)
    assert np.abs(img1.astype(int) - img2.astype(int)).mean() > 10  # different placement and conditions
    assert len(gt1) > 10 and len(gt2) > 10
    assert not np.allclose(gt1[: min(len(gt1), len(gt2)), :2], gt2[: min(len(gt1), len(gt2)), :2], atol=3)
    # carry impression 1's minutiae through master coordinates into impression 2: most land on one of 2's
    p1, p2 = placement(master, 0, 0), placement(master, 1, 0)
    mx, my = p1.backward(gt1[:, 0], gt1[:, 1])
    x2, y2 = p2.forward(mx, my)
    carried = np.stack([x2, y2, gt1[:, 2] + (p2.phi - p1.phi), gt1[:, 3]], 1)
    h, w = img2.shape
    on_image = (x2 > 10) & (x2 < w - 10) & (y2 > 10) & (y2 < h - 10)
    shared = _match(carried[on_image], gt2, 3.0, np.radians(20))
    assert shared >= 0.5 * min(on_image.sum(), len(gt2)), (shared, on_image.sum(), len(gt2))


def test_ground_truth_matches_detection_on_the_warped_master(master):
    import numpy.random as npr

    from fpverify.matcher.synth.impression import Placement

    rng = npr.default_rng(1)
    place = Placement(synth.SHAPE, master.centre, rng, distortion=6.0)
    warped = place.warp(master.pattern)
    valid = mn.reliable_region(warped, place.warp(master.mask), margin=14)
    detected = mn.detect(warped, valid, float(np.median(master.period)))
    x, y = place.forward(master.minutiae[:, 0], master.minutiae[:, 1])
    ax, ay = place.forward(
        master.minutiae[:, 0] + 4 * np.cos(master.minutiae[:, 2]), master.minutiae[:, 1] - 4 * np.sin(master.minutiae[:, 2])
    )
    moved = np.stack([x, y, np.mod(np.arctan2(-(ay - y), ax - x), 2 * np.pi), master.minutiae[:, 3]], 1)
    moved = moved[valid[np.clip(y.astype(int), 0, 415), np.clip(x.astype(int), 0, 351)]]
    shared = _match(moved, detected, 8.0, np.radians(30))
    assert shared >= 0.6 * len(moved), (shared, len(moved), len(detected))


def test_thinning_and_crossing_number():
    img = np.zeros((40, 40), bool)
    img[18:23, 5:35] = True  # a thick horizontal bar: one ridge with two endings
    img[5:18, 18:23] = True  # and a branch going up from its middle: a bifurcation
    skel = mn.thin(img)
    assert skel.sum() < img.sum() / 3
    cn = mn.crossing_number(skel)
    assert np.count_nonzero(cn == 1) == 3
    assert np.count_nonzero(cn == 3) >= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="class"):
        synth.generate_finger(1, kind="spiral")


def test_cli_writes_fvc_style_set(tmp_path):
    out = tmp_path / "set"
    run = subprocess.run(
        [sys.executable, "-m", "fpverify", "synth", "--fingers", "2", "--impressions", "2", "--seed", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["101_1.png", "101_2.png", "102_1.png", "102_2.png"]
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["dpi"] == 500 and set(truth["fingers"]) == {"101", "102"}
    rows = truth["fingers"]["102"]["impressions"]["102_2.png"]
    assert len(rows) > 5 and all(len(r) == 4 for r in rows)
    import cv2

    image = cv2.imread(str(out / "102_2.png"), cv2.IMREAD_GRAYSCALE)
    master = synth.generate_finger(4 * 1_000_003 + 1)
    expected, _ = synth.impression(master, 1, 4)
    assert np.array_equal(image, expected)
