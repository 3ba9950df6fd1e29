"""The learned minutia detector: decoding, the shipped model, bad models, and the trainer."""

from __future__ import annotations

import numpy as np
import pytest

from fpverify.bench import teacher
from fpverify.matcher import learned, synth
from fpverify.matcher.detectors import FusedDetector, LearnedDetector, SkeletonDetector
from fpverify.matcher.features import extract_features
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.segmentation import border_distance


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_decode_reads_peaks_offsets_directions_and_types():
    g = 20  # 80 x 80 px crop, all finger
    out = np.full((6, g, g), -10.0, np.float32)
    out[1:3] = 0.0  # offset 0.5 cell
    # strong minutia at cell (5, 8): offset (0.5, 0.5) -> (34, 22) px, direction 60 deg, bifurcation
    out[0, 5, 8] = _logit(0.9)
    out[3, 5, 8], out[4, 5, 8], out[5, 5, 8] = np.cos(np.pi / 3), np.sin(np.pi / 3), 3.0
    out[0, 5, 9] = _logit(0.6)  # its neighbour: not a local maximum
    out[0, 7, 9] = _logit(0.5)  # (38, 30) px, 8.9 px away: suppressed by a 10 px radius, kept by 6
    out[0, 14, 14] = _logit(0.4)  # ending, direction 180 deg
    out[3, 14, 14], out[4, 14, 14], out[5, 14, 14] = -1.0, 0.0, -3.0
    out[0, 17, 3] = _logit(0.2)  # below the threshold
    mask = np.ones((80, 80), bool)
    p = ExtractionParams(learned_threshold=0.3, learned_nms_px=10.0, learned_margin=0.0, quality_border_px=1.0)
    m = learned.decode(out, border_distance(mask), p)
    assert len(m) == 2
    np.testing.assert_allclose([m.x[0], m.y[0]], [34.0, 22.0], atol=1e-4)
    np.testing.assert_allclose(m.angle, [np.pi / 3, np.pi], atol=1e-5)
    assert list(m.kind) == [2, 1]
    assert m.quality[0] == pytest.approx(0.9, abs=1e-4)  # border ramp saturates at 1 px here
    assert len(learned.decode(out, border_distance(mask), ExtractionParams(learned_threshold=0.3, learned_nms_px=6.0, learned_margin=0))) == 3
    # the mask margin removes detections near the finger's edge
    edge = np.zeros((80, 80), bool)
    edge[:, :30] = True
    m2 = learned.decode(out, border_distance(edge), ExtractionParams(learned_threshold=0.3, learned_margin=4.0))
    assert len(m2) == 0


def test_confirm_adds_only_supported_new_minutiae():
    from fpverify.matcher.minutiae import Minutiae

    g = 20
    out = np.full((6, g, g), -10.0, np.float32)
    out[0, 10, 10] = _logit(0.1)  # weak support around (40..44, 40..44) px
    out[0, 3, 3] = _logit(0.9)
    f32 = np.float32
    found = Minutiae(np.array([14.0], f32), np.array([14.0], f32), np.array([1.0], f32), np.array([0.9], f32), np.array([1]))
    cand = Minutiae(
        np.array([16.0, 42.0, 70.0], f32),  # near a detection / supported / unsupported
        np.array([15.0, 41.0, 70.0], f32),
        np.array([0.5, 2.0, 3.0], f32),
        np.array([0.7, 0.7, 0.7], f32),
        np.array([2, 2, 1]),
    )
    mask = np.ones((80, 80), bool)
    p = ExtractionParams(learned_confirm=0.05, learned_nms_px=6.0, quality_border_px=1.0)
    m = learned.confirm(found, cand, out, border_distance(mask), p)
    assert len(m) == 2
    np.testing.assert_allclose([m.x[1], m.y[1], m.angle[1]], [42.0, 41.0, 2.0])
    assert m.quality[1] == pytest.approx(0.1, abs=1e-3) and m.kind[1] == 2
    assert m.kind[0] == 2  # the detection takes the type of the skeleton minutia 2 px away
    assert len(learned.confirm(found, cand, out, border_distance(mask), ExtractionParams(learned_confirm=0.2))) == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_learned_detector_finds_synthetic_minutiae(seed):
    """Ground truth of synthetic prints (which the network never saw): most minutiae found, few invented,
    directions right."""
    img, truth = synth.impression(synth.generate_finger(seed), 0)
    for detector in (LearnedDetector(), FusedDetector()):
        f = extract_features(img, params=ExtractionParams(detector=detector))
        a = teacher.agreement(f.minutiae.astype(np.float64), truth.astype(np.float64))
        assert a["recall"] > 0.75 and a["precision"] > 0.75 and a["angle_agree"] > 0.9, (detector, a)


def test_flip_averaging_makes_the_detector_mirror_symmetric():
    """With flips, mirroring the crop mirrors the answer exactly (the four looks are a group); without,
    it does not. The crop is a whole number of grid cells, so padding does not shift the cells."""
    from fpverify.matcher.features import prepare

    img, _ = synth.impression(synth.generate_finger(6), 0)
    p = prepare(img, 500, ExtractionParams())
    h, w = (p.mask.shape[0] // learned.STRIDE) * learned.STRIDE, (p.mask.shape[1] // learned.STRIDE) * learned.STRIDE
    norm, enh, mask = p.norm[:h, :w], p.enhanced[:h, :w], p.mask[:h, :w]

    def mirrored(flips):
        out = learned.run(norm[:, ::-1], enh[:, ::-1], mask[:, ::-1], flips=flips)[:, :, ::-1].copy()
        out[[1, 3]] *= -1  # x offset logit and direction cosine turn round with x
        return out

    plain = learned.run(norm, enh, mask, flips=True)
    np.testing.assert_allclose(mirrored(True), plain, atol=1e-4)
    single = learned.run(norm, enh, mask, flips=False)
    assert np.abs(mirrored(False) - single).max() > 1e-2
    # and the averaged answer is the mean of the plain one and the three mirrored ones
    assert np.abs(plain - single).max() > 1e-3


def test_shipped_model_was_not_trained_on_its_held_out_year():
    meta = learned.model_metadata()
    held = meta["fpverify.held_out"]
    assert held == "2002"
    assert "LEADER" in meta["fpverify.teacher"]
    assert all(f"fvc{held}_" not in s for s in meta["fpverify.training_sets"].split(","))


def test_bad_model_files_are_clear_errors(tmp_path):
    img, _ = synth.impression(synth.generate_finger(3), 0)
    with pytest.raises(ValueError, match="cannot read the minutia model"):
        extract_features(img, params=ExtractionParams(detector=FusedDetector(model=str(tmp_path / "missing.onnx"))))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a usable minutia model"):
        extract_features(img, params=ExtractionParams(detector=LearnedDetector(model=str(junk))))
    with pytest.raises(ValueError, match="unknown minutia detector"):
        extract_features(img, params=ExtractionParams(detector="magic"))


def test_both_detectors_agree_on_a_clean_print():
    img, truth = synth.impression(synth.generate_finger(4), 1)
    a = extract_features(img, params=ExtractionParams(detector=LearnedDetector())).minutiae
    b = extract_features(img, params=ExtractionParams(detector=SkeletonDetector())).minutiae
    assert teacher.agreement(a.astype(np.float64), b.astype(np.float64))["recall"] > 0.7


@pytest.mark.parametrize("scale", [0.0, 0.2])
def test_augment_moves_minutiae_and_directions_with_the_image(scale):
    """A bright blob at the minutia and a dimmer one 20 px along its direction must stay so after any
    resize, crop, flip or transpose."""
    from fpverify import train_extractor as tx

    x = np.zeros((3, 120, 140), np.float32)
    px, py, th = 70.0, 60.0, 0.6
    qx, qy = int(round(px + 20 * np.cos(th))), int(round(py + 20 * np.sin(th)))
    x[0, int(py) - 1 : int(py) + 2, int(px) - 1 : int(px) + 2] = 1.0
    x[0, qy - 1 : qy + 2, qx - 1 : qx + 2] = 0.5
    x[2] = 1.0
    s = tx.Sample(x, np.array([[px, py, th, 0.0]], np.float32))
    rng = np.random.default_rng(0)
    for _ in range(40):
        img, p = tx.augment(s, 128, rng, scale=scale, blur=0.0)
        assert len(p) == 1
        ch = img[0].copy()
        x1, y1 = _blob_centre(ch)
        ch[int(y1) - 4 : int(y1) + 6, int(x1) - 4 : int(x1) + 6] = 0
        x2, y2 = _blob_centre(ch)
        assert np.hypot(x1 - p[0, 0], y1 - p[0, 1]) <= 1.0
        d = np.angle(np.exp(1j * (np.arctan2(y2 - y1, x2 - x1) - p[0, 2])))
        assert abs(d) < 0.1


def _blob_centre(ch: np.ndarray) -> tuple[float, float]:
    """Centroid of the brightest blob (pixels above half its peak within 3 px of the peak)."""
    y, x = np.unravel_index(np.argmax(ch), ch.shape)
    y0, x0 = max(y - 3, 0), max(x - 3, 0)
    win = ch[y0 : y + 4, x0 : x + 4]
    w = np.where(win > 0.5 * win.max(), win, 0)
    yy, xx = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    return float((w * xx).sum() / w.sum() + x0), float((w * yy).sum() / w.sum() + y0)


def test_sensor_views_keep_the_teacher_minutiae_in_place():
    """A sensor view (`--sensor-views`) is the image's own pixels at 4 bits, and its labels are the full
    image's minutiae that fall in the view, at the same places on the finger."""
    from fpverify import train_extractor as tx
    from fpverify.bench import datasets
    from fpverify.matcher.features import prepare

    img, truth = synth.impression(synth.generate_finger(5), 0)
    rows = np.column_stack([truth[:, :3], np.ones(len(truth)), truth[:, 3]])  # as teacher rows
    win, top, left = datasets.sensor_window(img, 500)
    assert np.array_equal(win, datasets.to_sensor(img, 500))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + win.shape[0], img.shape[0]), min(left + win.shape[1], img.shape[1])
    assert y1 - y0 > 100 and x1 - x0 > 100
    assert np.array_equal(win[y0 - top : y1 - top, x0 - left : x1 - left], (img[y0:y1, x0:x1] >> 4) * 17)

    s = tx._sample(win, 500, rows, left, top)
    p = prepare(win, 500)
    assert s.x.shape[1:] == p.mask.shape
    back = s.pts[:, :2] + [left + p.x0, top + p.y0]
    h, w = p.mask.shape
    inside = ((rows[:, 0] - left - p.x0 >= 0) & (rows[:, 0] - left - p.x0 < w)
              & (rows[:, 1] - top - p.y0 >= 0) & (rows[:, 1] - top - p.y0 < h))
    assert 5 <= len(s.pts) == inside.sum() < len(rows)  # the window cuts some away
    assert np.allclose(back, rows[inside, :2], atol=1e-3)
    assert np.array_equal(s.pts[:, 3], rows[inside, 4] == 2)


def test_training_runs_exports_and_loads(tmp_path):
    """A few steps on synthetic prints with their true minutiae: the ONNX file loads and extracts."""
    pytest.importorskip("torch", reason="training needs PyTorch: pip install 'fpverify[train]'")
    from fpverify import train_extractor as tx
    from fpverify.matcher.features import prepare

    samples = []
    for seed in (5, 6):
        img, truth = synth.impression(synth.generate_finger(seed), 0)
        p = prepare(img)
        pts = np.stack([truth[:, 0] - p.x0, truth[:, 1] - p.y0, np.mod(-truth[:, 2], 2 * np.pi), truth[:, 3] == 2], 1)
        samples.append(tx.Sample(learned.net_input(p.norm, p.enhanced, p.mask), pts.astype(np.float32)))
    losses = []
    model = tx.train(samples, steps=30, batch=2, crop=128, channels=8, log=lambda step, parts: losses.append(parts))
    assert losses and np.isfinite(losses[-1]).all()
    path = tmp_path / "m.onnx"
    tx.export(model, path, {"fpverify.held_out": "none"})
    params = ExtractionParams(detector=LearnedDetector(model=str(path)))
    assert learned.model_metadata(str(path))["fpverify.held_out"] == "none"
    f = extract_features(samples and synth.impression(synth.generate_finger(7), 0)[0], params=params)
    assert f.minutiae.shape[1] == 5  # an untrained net may find nothing, but it must run end to end

    # the int8 copy: calibrated on the extra set's crops, metadata kept, answers close to the float net's
    from PIL import Image

    root = tmp_path / "sets"
    with pytest.raises(ValueError, match="no calibration images"):
        tx.quantize(path, tmp_path / "q.onnx", root)
    (root / "upek_16x8").mkdir(parents=True)
    for k in range(4):
        Image.fromarray(synth.impression(synth.generate_finger(8), k)[0]).save(root / "upek_16x8" / f"1_{k + 1}.png")
    meta = tx.quantize(path, tx.int8_path(path), root, every=1)
    q = str(tx.int8_path(path))
    assert q.endswith("m-int8.onnx") and "calibrated on 8 crops" in meta["fpverify.quantized"]
    assert learned.model_metadata(q)["fpverify.held_out"] == "none"
    x = samples[0].x
    want = learned.run(x[0], x[1], x[2].astype(bool), str(path), flips=False)
    got = learned.run(x[0], x[1], x[2].astype(bool), q, flips=False)
    assert np.abs(got - want).max() < 0.1 * (np.abs(want).max() + 1e-6)


def test_quantize_refuses_a_file_that_is_no_model(tmp_path):
    """`fpverify train quantize` on junk: one error line and exit 2, no traceback, nothing written."""
    from typer.testing import CliRunner

    from fpverify.cli import app

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    res = CliRunner().invoke(app, ["train", "quantize", "--model", str(junk), "--out", str(tmp_path / "q.onnx")])
    assert res.exit_code == 2 and "could not be quantized" in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "q.onnx").exists()
