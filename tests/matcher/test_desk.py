"""`bench desk` on a small synthetic set: its protocol checked against decisions made by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fpverify import matcher
from fpverify.bench import datasets, desk
from fpverify.matcher import synth

FINGERS, PRESSES, ENROLL = 3, 5, 2


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory):
    """Two FVC-style folders of synthetic fingers (<finger>_<press>.png)."""
    root = tmp_path_factory.mktemp("desk-sets")
    for s, name in enumerate(("synth_a", "synth_b")):
        (root / name).mkdir()
        for f in range(FINGERS):
            master = synth.generate_finger(100 + 10 * s + f)
            for k in range(PRESSES):
                Image.fromarray(synth.impression(master, k)[0]).save(root / name / f"{101 + f}_{k + 1}.png")
    return root


def _by_hand(root, name, point, pooled_with=()):
    """False accepts / impostor decisions of one set's probes, deciding as the station does."""
    t = {
        n: {k: matcher.extract(v) for k, v in datasets.load_set(root, n).items()}
        for n in (name, *pooled_with)
    }
    cards = {
        (n, f): [t[n][(f, i)] for i in range(1, ENROLL + 1)] for n in t for f in range(101, 101 + FINGERS)
    }
    fa = decisions = 0
    for (f, i), probe in t[name].items():
        if i <= ENROLL:
            continue
        for (n, g), enrolled in cards.items():
            if (n, g) == (name, f):
                continue
            best = max(matcher.compare(probe, x) for x in enrolled)
            fa += best >= matcher.decision_threshold(point, len(enrolled))
            decisions += 1
    return fa, decisions


@pytest.mark.slow
def test_desk_protocol_on_synthetic_fingers(synthetic_sets, tmp_path):
    out = tmp_path / "desk"
    res = desk.run(synthetic_sets, ["synth_a", "synth_b"], "native", out, enroll=ENROLL, cache=tmp_path / "c")
    assert json.loads((out / "results.json").read_text()) == res
    points = [p for p in matcher.THRESHOLDS if p.startswith("fmr_")]
    probes = FINGERS * (PRESSES - ENROLL)
    for name in ("synth_a", "synth_b"):
        assert set(res["sets"][name]) == set(points)
        for p in points:
            r = res["sets"][name][p]
            assert {"FMR", "FNMR", "FNMR_after_retry", "impostor_decisions"} <= set(r)
            assert r["impostor_decisions"] == probes * (FINGERS - 1)
            assert r["genuine_decisions"] == probes and r["retry_pairs"] == FINGERS * (PRESSES - ENROLL - 1)
            assert r["estimate"] is True  # 6 fingers cannot resolve 1e-2
            assert 0 <= r["FNMR_after_retry"] <= r["FNMR"] <= 1
    for p in points:
        assert res["pooled"][p]["impostor_decisions"] == 2 * probes * (2 * FINGERS - 1)
        assert res["pooled_same_set"][p]["impostor_decisions"] == 2 * probes * (FINGERS - 1)
    assert res["thresholds"]["fmr_1e-4"] == {str(ENROLL): matcher.decision_threshold("fmr_1e-4", ENROLL)}
    # the same decisions made by hand, one press at a time
    fa, n = _by_hand(synthetic_sets, "synth_a", "fmr_1e-2")
    assert (fa, n) == (
        res["sets"]["synth_a"]["fmr_1e-2"]["false_accepts"],
        res["sets"]["synth_a"]["fmr_1e-2"]["impostor_decisions"],
    )
    report = (out / "report.md").read_text()
    assert "synth_a" in report and "~" in report and "after retry" in report
    # synthetic presses of one finger agree: most genuine presses pass at the loosest point
    assert res["pooled"]["fmr_1e-2"]["FNMR"] < 0.5


@pytest.mark.slow
def test_a_finger_in_two_sets_is_no_impostor_of_itself(synthetic_sets, tmp_path, monkeypatch):
    monkeypatch.setitem(datasets.SAME_FINGER, ("synth_b", 101), ("synth_a", 101))
    res = desk.run(
        synthetic_sets, ["synth_a", "synth_b"], "native", tmp_path, enroll=ENROLL, cache=tmp_path / "c"
    )
    probes = FINGERS * (PRESSES - ENROLL)
    # the 2 x 3 probes of that finger lose the other set's card as an impostor decision
    assert res["pooled"]["fmr_1e-2"]["impostor_decisions"] == 2 * probes * (2 * FINGERS - 1) - 2 * (
        PRESSES - ENROLL
    )


@pytest.mark.slow
def test_desk_with_a_cohort_decides_on_normalised_scores(synthetic_sets, tmp_path):
    """Each enrolled template normalised by its scores against the other set's presses, by hand."""
    from fpverify.matcher import decision

    names = ("synth_a", "synth_b")
    t = {n: {k: matcher.extract(v) for k, v in datasets.load_set(synthetic_sets, n).items()} for n in names}
    cohort = {"synth_a": ["synth_b"], "synth_b": ["synth_a"]}
    presses = {n: [(datasets.identity(c, f), x) for c in cohort[n] for (f, _), x in t[c].items()] for n in names}
    f = desk.score(t, ENROLL, presses, min_cohort=FINGERS * PRESSES)
    assert f.comparisons == 2 * FINGERS * (PRESSES - ENROLL) * 2 * FINGERS * ENROLL + 2 * FINGERS * ENROLL * (
        FINGERS * PRESSES
    )
    cards = [(n, g) for n in names for g in range(101, 101 + FINGERS)]
    probes = [(n, g, i) for n in names for g in range(101, 101 + FINGERS) for i in range(ENROLL + 1, PRESSES + 1)]
    for c, (n, g) in enumerate(cards):
        enrolled = [t[n][(g, i)] for i in range(1, ENROLL + 1)]
        other = cohort[n][0]
        stats = [decision.cohort_of([matcher.compare(x, e) for x in t[other].values()], 15) for e in enrolled]
        for p, (pn, pg, pi) in enumerate(probes):
            probe = t[pn][(pg, pi)]
            by_hand = max(z.normalise(matcher.compare(probe, e)) for e, z in zip(enrolled, stats, strict=True))
            assert f.best[p, c] == pytest.approx(by_hand, abs=1e-12)
    res = desk.run(synthetic_sets, list(names), "native", tmp_path / "d", enroll=ENROLL, cache=tmp_path / "c",
                   cohort=cohort, min_cohort=FINGERS * PRESSES)
    assert res["thresholds"]["fmr_1e-4"] == {str(ENROLL): decision.cohort_threshold("fmr_1e-4", ENROLL)}
    assert res["cohort"] == cohort and "normalised" in (tmp_path / "d" / "report.md").read_text()
    own = f.best[np.arange(len(probes)), f.probe_card]
    t2 = decision.cohort_threshold("fmr_1e-2", ENROLL)
    assert res["pooled"]["fmr_1e-2"]["FNMR"] == pytest.approx(float(np.mean(own < t2)))
    with pytest.raises(ValueError, match="too few"):  # 15 presses cannot normalise a station's template
        desk.run(synthetic_sets, list(names), "native", tmp_path / "e", enroll=ENROLL, cohort=cohort)
    with pytest.raises(ValueError, match="never the set itself"):
        desk.run(synthetic_sets, ["synth_a"], "native", tmp_path / "e", enroll=ENROLL, cohort={"synth_a": ["synth_a"]})
    with pytest.raises(ValueError, match="needs FVC sets"):
        desk.other_years(["synth_a"])
    assert desk.other_years(["fvc2002_db1_b"])["fvc2002_db1_b"] == [
        s for s in datasets.FVC_SETS if not s.startswith("fvc2002")
    ]


@pytest.mark.slow
def test_cards_of_two_fingers_compare_every_template_and_no_finger_with_itself(synthetic_sets):
    """--fingers 2: fingers 101+102 are one card (2 x ENROLL templates), 103 a card of its own; a press
    is genuine against its card, never an impostor against it, and the threshold counts all templates."""
    names = ("synth_a", "synth_b")
    t = {n: {k: matcher.extract(v) for k, v in datasets.load_set(synthetic_sets, n).items()} for n in names}
    f = desk.score(t, ENROLL, fingers_per_card=2)
    groups = [(n, (101, 102)) for n in names] + [(n, (103,)) for n in names]
    groups = sorted(groups, key=lambda g: (names.index(g[0]), g[1][0]))
    assert f.card_n.tolist() == [2 * ENROLL if len(g) == 2 else ENROLL for _, g in groups]
    probes = [(n, g, i) for n in names for g in range(101, 101 + FINGERS) for i in range(ENROLL + 1, PRESSES + 1)]
    for c, (n, fingers) in enumerate(groups):
        enrolled = [t[n][(g, i)] for g in fingers for i in range(1, ENROLL + 1)]
        for p, (pn, pg, pi) in enumerate(probes):
            assert f.best[p, c] == pytest.approx(max(matcher.compare(t[pn][(pg, pi)], e) for e in enrolled), abs=1e-12)
            own = pn == n and pg in fingers
            assert (f.probe_card[p] == c) == own
            assert desk._impostor_mask(f, np.arange(2), False)[p, c] == (not own)
    with pytest.raises(ValueError, match="--fingers"):
        desk.run(synthetic_sets, list(names), "native", None, enroll=ENROLL, fingers_per_card=0)


def test_desk_refuses_what_leaves_no_retry(synthetic_sets, tmp_path):
    with pytest.raises(ValueError, match="no retry"):
        desk.run(synthetic_sets, ["synth_a"], "native", tmp_path, enroll=PRESSES - 1)
    with pytest.raises(ValueError, match="condition"):
        desk.run(synthetic_sets, ["synth_a"], "dry", tmp_path)
    assert np.isfinite(matcher.decision_threshold("fmr_1e-3", ENROLL))


def test_calibration_check_counts_its_decisions(synthetic_sets):
    """`bench calibrate`'s held-out check on the synthetic sets: pool sizes and card layouts."""
    from fpverify.bench import calibrate

    t = {
        n: {k: matcher.extract(v) for k, v in datasets.load_set(synthetic_sets, n).items()}
        for n in ("synth_a", "synth_b")
    }
    year = calibrate.Year(t)
    pools = year.same_set_impostors()
    assert [len(p) for p in pools] == [FINGERS * PRESSES * (FINGERS - 1) * PRESSES] * 2  # both orders
    assert len(year.cards(ENROLL, 2)) == 2 * FINGERS and all(
        len(c) == 2 * ENROLL for c in year.cards(ENROLL, 2)
    )
    res = calibrate.check_year(year, {"fmr_1e-2": 0.2}, 0.01, ENROLL)
    probes = 2 * FINGERS * (PRESSES - ENROLL)
    rows = res["fmr_1e-2"]
    assert set(rows) == {"1", str(ENROLL), str(2 * ENROLL), str(3 * ENROLL)}
    # one finger a card: every probe of the other 5 fingers; three fingers a card: of the other 3
    assert rows[str(ENROLL)]["impostor_decisions"] == 2 * FINGERS * (probes - (PRESSES - ENROLL))
    assert rows[str(3 * ENROLL)]["impostor_decisions"] == 2 * FINGERS * (
        probes - FINGERS * (PRESSES - ENROLL)
    )
    assert rows["1"]["threshold"] < rows[str(ENROLL)]["threshold"] < rows[str(3 * ENROLL)]["threshold"]
    assert all(r["estimate"] and 0 <= r["FMR"] <= r["FMR_upper95"] <= 1 for r in rows.values())


@pytest.mark.slow
def test_calibration_normalises_each_template_by_another_years_presses(synthetic_sets, monkeypatch):
    """`bench calibrate --cohort`: a template's column normalised by the cohort's scores against it,
    its own finger's presses (a finger found in both sets) left out of its cohort."""
    from fpverify.bench import calibrate
    from fpverify.matcher import decision

    monkeypatch.setitem(datasets.SAME_FINGER, ("synth_b", 101), ("synth_a", 101))
    t = {n: {k: matcher.extract(v) for k, v in datasets.load_set(synthetic_sets, n).items()} for n in ("synth_a", "synth_b")}
    a, b = calibrate.Year({"synth_a": t["synth_a"]}), calibrate.Year({"synth_b": t["synth_b"]})
    block = a.cohort_scores(b)
    assert block.shape == (FINGERS * PRESSES, FINGERS * PRESSES)
    assert block[0, 1] == matcher.compare(b.templates[0], a.templates[1])
    z = a.normalised([(b, block)], minimum=10)
    for j in range(len(a.keys)):
        rows = [k for k in range(len(b.keys)) if b.finger[k] != a.finger[j]]
        assert len(rows) == (FINGERS - 1) * PRESSES if a.keys[j][1] == 101 else FINGERS * PRESSES
        c = decision.cohort_of(block[rows, j], 10)
        assert z.S[:, j] == pytest.approx((a.S[:, j] - c.mean) / c.sd)
    assert z.keys == a.keys and a.S is not z.S


@pytest.mark.slow
def test_desk_extracts_each_held_out_year_with_its_own_model(synthetic_sets, tmp_path):
    """--held-out-model: a year's presses (cards and probes) come from that year's extractor; the
    shipped network, which saw FVC2000, is refused for 2000."""
    from fpverify.matcher.detectors import SkeletonDetector
    from fpverify.matcher.params import ExtractionParams

    root = tmp_path / "sets"
    root.mkdir()
    for src, name in (("synth_a", "fvc2000_db9_b"), ("synth_b", "fvc2002_db9_b")):
        (root / name).symlink_to(synthetic_sets / src, target_is_directory=True)
    skeleton = ExtractionParams(detector=SkeletonDetector())
    both = desk.run(root, ["fvc2000_db9_b", "fvc2002_db9_b"], "native", tmp_path / "both", enroll=ENROLL,
                    by_year={"2000": skeleton})
    assert both["extractor_by_year"] == {"2000": {"detector": "skeleton"}}
    alone = desk.run(root, ["fvc2000_db9_b"], "native", tmp_path / "alone", enroll=ENROLL, extraction=skeleton)
    shipped = desk.run(root, ["fvc2002_db9_b"], "native", tmp_path / "shipped", enroll=ENROLL)
    assert both["sets"]["fvc2000_db9_b"] == alone["sets"]["fvc2000_db9_b"]
    assert both["sets"]["fvc2002_db9_b"] == shipped["sets"]["fvc2002_db9_b"]
    assert "FVC2000 presses: detector skeleton" in (tmp_path / "both" / "report.md").read_text()
    with pytest.raises(ValueError, match="not held out"):
        desk.run(root, ["fvc2000_db9_b"], "native", tmp_path / "no", enroll=ENROLL, by_year={"2000": ExtractionParams()})
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["desk", "--enroll", "0"], "--enroll must be at least 1"),
        (["desk", "--fingers", "0"], "--fingers must be at least 1"),
        (["desk", "--condition", "dry"], "condition must be native or sensor"),
        (["desk", "--enroll", "4"], "no retry"),
        (["calibrate"], "calibration needs all 12 FVC sets"),
        (["desk", "--cohort", "magic"], "--cohort must be none or other-years"),
        (["desk", "--cohort", "other-years"], "needs FVC sets"),
        (["calibrate", "--cohort", "magic"], "--cohort none or other-years"),
        (["accuracy", "--detector", "magic"], "--detector must be one of fused, learned, skeleton"),
        (["desk", "--held-out-model", "2000"], "--held-out-model wants YEAR=FILE"),
        (["accuracy", "--held-out-model", "2000=/no/such.onnx"], "no such file"),
    ],
)
def test_bench_commands_refuse_bad_input_clearly(synthetic_sets, tmp_path, args, message):
    from typer.testing import CliRunner

    from fpverify.cli import app

    res = CliRunner().invoke(
        app,
        ["bench", *args, "--datasets", str(synthetic_sets), "--sets", "synth_a", "--out", str(tmp_path / "o")]
        if args[0] != "calibrate"
        else ["bench", *args, "--datasets", str(synthetic_sets), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 2 and message in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)  # an error line, no traceback
