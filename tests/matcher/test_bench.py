from __future__ import annotations

import json

import numpy as np
import pytest

from fpverify.bench import accuracy, datasets


@pytest.mark.slow
@pytest.mark.datasets
def test_accuracy_bench_on_one_set(datasets_dir, tmp_path):
    name = "fvc2002_db1_b"
    res = accuracy.run(datasets_dir, [name], "native", tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == res
    assert set(res) == {"extractor", "sets", "mean"}
    assert res["extractor"]["detector"] == "fused" and res["extractor"]["held_out"] == "2002"
    r = res["sets"][name]
    assert set(r) == {"fvc", "allpairs", "extract_ms_median", "compare_us_median", "FTE", "seen_in_training"}
    assert r["seen_in_training"] is False  # the shipped network never saw FVC2002
    assert set(r["allpairs"]) == {"EER", "FMR100", "FMR1000", "ZeroFMR"}
    assert set(r["fvc"]) == {"EER", "FMR100", "FMR1000", "ZeroFMR"}
    assert set(res["mean"]) == {"allpairs_EER", "allpairs_FMR1000", "fvc_EER"}
    for v in list(r["allpairs"].values()) + list(r["fvc"].values()) + [r["FTE"]]:
        assert 0.0 <= v <= 1.0
    assert r["allpairs"]["EER"] < 0.15  # a working matcher, not a coin flip
    assert r["extract_ms_median"] > 0 and r["compare_us_median"] > 0
    report = (tmp_path / "report.md").read_text()
    assert name in report and "SourceAFIS" in report and "3.03" in report
    assert (tmp_path / "det.png").stat().st_size > 1000
    thresholds = json.loads((tmp_path / "thresholds.json").read_text())
    assert set(thresholds["points"]) == {"fmr_1e-2", "fmr_1e-3", "fmr_1e-4"}


@pytest.mark.slow
@pytest.mark.datasets
def test_accuracy_bench_marks_sets_the_network_saw(datasets_dir, tmp_path):
    """FVC2000 is in the shipped network's training data: its row is flagged, the classical one not."""
    from fpverify.matcher.detectors import SkeletonDetector
    from fpverify.matcher.params import ExtractionParams

    name = "fvc2000_db4_b"
    res = accuracy.run(datasets_dir, [name], "native", tmp_path)
    assert res["sets"][name]["seen_in_training"] is True
    assert f"{name} †" in (tmp_path / "report.md").read_text()
    res = accuracy.run(datasets_dir, [name], "native", tmp_path / "skeleton", extraction=ExtractionParams(detector=SkeletonDetector()))
    assert res["sets"][name]["seen_in_training"] is False and res["extractor"] == {"detector": "skeleton"}


@pytest.mark.slow
@pytest.mark.datasets
def test_accuracy_bench_takes_a_model_per_held_out_year(datasets_dir, tmp_path):
    """The held-out protocol in one run: each listed year's sets with its own extractor, one pooled table."""
    from fpverify.matcher.detectors import SkeletonDetector
    from fpverify.matcher.params import ExtractionParams

    names = ["fvc2000_db4_b", "fvc2002_db1_b"]
    res = accuracy.run(datasets_dir, names, "native", tmp_path,
                       by_year={"2000": ExtractionParams(detector=SkeletonDetector())})
    # FVC2000 by the classical detector (which saw nothing), FVC2002 by the shipped network (held out)
    assert res["extractor_by_year"] == {"2000": {"detector": "skeleton"}}
    assert res["sets"]["fvc2000_db4_b"]["seen_in_training"] is False
    alone = accuracy.run(datasets_dir, names[:1], "native", tmp_path / "alone",
                         extraction=ExtractionParams(detector=SkeletonDetector()))
    assert res["sets"]["fvc2000_db4_b"]["allpairs"] == alone["sets"]["fvc2000_db4_b"]["allpairs"]
    shipped = accuracy.run(datasets_dir, names[1:], "native", tmp_path / "shipped")
    assert res["sets"]["fvc2002_db1_b"]["allpairs"] == shipped["sets"]["fvc2002_db1_b"]["allpairs"]
    report = (tmp_path / "report.md").read_text()
    assert "FVC2000 sets: skeleton" in report and "†" not in report
    pooled = json.loads((tmp_path / "thresholds.json").read_text())
    assert pooled["impostors"] == 2 * 3160 - 2 * 280  # both sets' all-pairs impostors, one pool


def test_accuracy_bench_refuses_a_model_that_saw_its_year(tmp_path):
    """The shipped network was trained on FVC2000: given for 2000 it would be no held-out figure."""
    from fpverify.matcher.params import ExtractionParams

    with pytest.raises(ValueError, match="trained on fvc2000_db1_b.*not held out"):
        accuracy.run(tmp_path, ["fvc2000_db1_b"], "native", tmp_path / "out", by_year={"2000": ExtractionParams()})
    with pytest.raises(ValueError, match="no set of that year"):
        accuracy.run(tmp_path, ["fvc2000_db1_b"], "native", tmp_path / "out",
                     by_year={"2002": ExtractionParams()})
    assert not (tmp_path / "out").exists()  # refused before any work


def test_year_of():
    assert datasets.year_of("fvc2004_db2_b") == "2004" and datasets.year_of("upek_16x8") == ""


def test_sensor_condition_shape_and_depth():
    rng = np.random.default_rng(0)
    img = np.full((480, 640), 230, np.uint8)
    img[100:400, 300:520] = rng.integers(0, 200, (300, 220))  # the "finger"
    out = datasets.to_sensor(img, 500)
    assert out.shape == (288, 256) and out.dtype == np.uint8
    assert len(np.unique(out)) <= 16 and set(np.unique(out)) <= {17 * i for i in range(16)}
    # The finger is kept: most of the window is textured, not background.
    assert (out < 200).mean() > 0.5
    small = datasets.to_sensor(np.full((100, 100), 7, np.uint8), 569)
    assert small.shape == (288, 256)


def test_dpi_table():
    assert datasets.dpi_of("fvc2002_db2_b") == 569
    assert datasets.dpi_of("fvc2004_db3_b") == 512
    assert datasets.dpi_of("fvc2000_db1_b") == 500
    assert len(datasets.FVC_SETS) == 12
