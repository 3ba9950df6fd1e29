from __future__ import annotations

import numpy as np
import pytest

from fpverify import matcher
from fpverify.matcher.gallery import build_onnx_model
from tests.matcher.synthetic import finger, impression


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(99)
    fingers = [finger(rng, n=int(rng.integers(25, 60))) for _ in range(40)]
    gallery = matcher.Gallery((f"id{i}", impression(rng, f)) for i, f in enumerate(fingers))
    probes = [impression(rng, f) for f in fingers]
    return gallery, probes


def test_onnx_and_numpy_agree(world):
    gallery, probes = world
    for p in probes[:10]:
        a = gallery.first_stage(p, backend="numpy")
        b = gallery.first_stage(p, backend="onnx")
        assert a.shape == (len(gallery),)
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert a.max() > 0


def test_onnx_model_is_valid():
    import onnx

    onnx.checker.check_model(build_onnx_model(32))


@pytest.mark.slow
def test_search_finds_the_mate(world):
    gallery, probes = world
    for i, p in enumerate(probes):
        for backend in ("numpy", "onnx"):
            hits = matcher.search(p, gallery, top_k=3, backend=backend)
            assert hits[0][0] == f"id{i}"
            assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_first_stage_alone_ranks_the_mate_high(world):
    gallery, probes = world
    ranks = []
    for i, p in enumerate(probes):
        keys = [k for k, _ in matcher.search(p, gallery, top_k=5, rerank=0)]
        ranks.append(keys.index(f"id{i}") if f"id{i}" in keys else 99)
    assert np.mean(np.array(ranks) == 0) >= 0.9


def test_reranked_scores_are_compare_scores(world):
    gallery, probes = world
    key, score = matcher.search(probes[3], gallery, top_k=1)[0]
    assert score == pytest.approx(matcher.compare(probes[3], gallery.template(gallery.keys.index(key))))


def test_gallery_edits_and_errors(world):
    gallery, probes = world
    g = matcher.Gallery()
    assert matcher.search(probes[0], g) == []
    g.add("a", probes[0])
    g.add("b", probes[1])
    assert len(g) == 2 and g.remove("a") == 1 and g.keys == ["b"]
    assert matcher.search(probes[1], g, top_k=5)[0][0] == "b"
    with pytest.raises(ValueError):
        g.add("x", b"not a template")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        matcher.search(probes[0], g, top_k=0)
    with pytest.raises(ValueError):
        g.first_stage(probes[0], backend="cuda")  # type: ignore[arg-type]


# ---- compact codes and the code gallery (matcher.codes, matcher.index; issue 18) -------------------

from fpverify.matcher import codes, index  # noqa: E402


def _hamming_reference(probe: np.ndarray, gallery: np.ndarray, counts: np.ndarray, p: codes.CodeParams):
    """The first-stage score written plainly in numpy (bits unpacked), for the compiled scan."""
    pb = np.unpackbits(probe.view(np.uint8), axis=1)  # (P, bits)
    out = np.zeros(len(gallery), np.float32)
    for t in range(len(gallery)):
        if counts[t] == 0:
            continue
        gb = np.unpackbits(np.ascontiguousarray(gallery[t].T).view(np.uint8), axis=1)  # (m, bits)
        d = (pb[:, None, :] != gb[None, :, :]).sum(axis=2).min(axis=1)
        k = min(p.topk, len(d))
        out[t] = 1.0 - 2.0 * np.sort(d)[:k].mean() / p.bits
    return out


def test_compiled_scan_equals_the_plain_definition(world):
    gallery, probes = world
    g = index.CodeGallery()
    for i in range(len(gallery)):
        g.add(i, gallery.template(i))
    pc = codes.probe_code(probes[0])
    got = g.first_stage(pc)
    want = _hamming_reference(pc, g._codes[: len(g)], g._counts[: len(g)], g.p)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_array_equal(g.first_stage(pc, threads=2), got)


def test_codes_rank_the_mate_first(world):
    gallery, probes = world
    g = index.CodeGallery()
    for i in range(len(gallery)):
        g.add(f"id{i}", gallery.template(i), group=i)
    firsts = [g.shortlist([p], 1)[0] == f"id{i}" for i, p in enumerate(probes)]
    assert np.mean(firsts) >= 0.9
    # a code is a function of the template: the same template, the same code
    a, ka = codes.gallery_code(probes[1])
    b, kb = codes.gallery_code(matcher.Template.from_bytes(probes[1].to_bytes()))
    assert ka == kb > 0 and np.array_equal(a, b) and a.shape == (2, 32) and a.dtype == np.uint64


def test_search_reranks_with_compare_and_leaves_the_own_group_out(world):
    gallery, probes = world
    g = index.CodeGallery()
    store = {}
    for i in range(len(gallery)):
        g.add(f"id{i}", gallery.template(i), group=i)
        store[f"id{i}"] = gallery.template(i)

    def fetch(keys):
        return [(k, store[k]) for k in keys]

    hits = index.search([probes[5]], g, fetch, top_k=3, shortlist=8)
    assert hits[0][0] == "id5" and hits[0][1] == pytest.approx(matcher.compare(probes[5], store["id5"]))
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    hits = index.search([probes[5]], g, fetch, top_k=3, shortlist=8, exclude_group=5)
    assert "id5" not in [k for k, _ in hits]
    with pytest.raises(ValueError):
        index.search([b"x"], g, fetch)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        g.shortlist([probes[0]], 0)


def test_gallery_add_remove_extend_and_digests(world):
    gallery, probes = world
    g = index.CodeGallery(capacity=2)  # grows
    for i in range(5):
        g.add(f"k{i}", gallery.template(i), group=i // 2, digest=100 + i)
    before = {k: g.first_stage(codes.probe_code(probes[0]))[g.row(k)] for k in g.keys}
    assert g.remove("k1") and not g.remove("k1") and len(g) == 4 and "k1" not in g
    after = g.first_stage(codes.probe_code(probes[0]))
    assert {k: after[g.row(k)] for k in g.keys} == {k: v for k, v in before.items() if k != "k1"}
    assert g.with_digest(104) == ["k4"] and g.with_digest(101) == [] and g.group("k4") == 2
    g.add("k0", gallery.template(7))  # replacing keeps one row
    assert len(g) == 4 and g.keys.count("k0") == 1
    c, k = codes.gallery_code(gallery.template(8))
    g.extend(["e1", "e2"], np.stack([c, c]), np.array([k, 0]), np.array([9, 9]), np.array([1, 2]))
    assert len(g) == 6 and g.shortlist([probes[8]], 10).count("e2") == 0  # no cylinders: never listed
    with pytest.raises(ValueError, match="new, distinct"):
        g.extend(["e1"], c[None], np.array([k]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        g.add_code("bad", np.zeros((3, 32), np.uint64), 1)
    with pytest.raises(ValueError):
        g.add("bad", b"not a template")  # type: ignore[arg-type]
    blank = matcher.Template(np.zeros((0, 5)), (300, 300))  # no minutiae: nothing to search with
    assert g.shortlist([blank], 5) == []
    empty = index.CodeGallery()
    assert (
        empty.first_stage(codes.probe_code(probes[0])).shape == (0,) and empty.shortlist(probes[:1], 5) == []
    )


def test_snapshot_round_trip_and_bad_files(world, tmp_path):
    gallery, probes = world
    g = index.CodeGallery()
    for i in range(len(gallery)):
        g.add(f"id{i}", gallery.template(i), group=i % 7, digest=i)
    path = tmp_path / "codes.npz"
    g.save(path, {"version": 42})
    h, meta = index.CodeGallery.load(path)
    assert meta == {"version": 42} and h.keys == g.keys and h.nbytes == g.nbytes
    pc = codes.probe_code(probes[3])
    np.testing.assert_array_equal(h.first_stage(pc), g.first_stage(pc))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="unreadable"):
        index.CodeGallery.load(bad)
    with pytest.raises(ValueError, match="unreadable"):
        index.CodeGallery.load(tmp_path / "missing.npz")


def test_projection_was_not_fitted_on_the_benchmark_sets():
    import json

    from fpverify.bench.datasets import FVC_SETS

    rec = json.loads(codes.PROJECTION_FILE.read_text())
    assert rec["trained_on"] and not set(rec["trained_on"]) & set(FVC_SETS)
    mean, axes = codes.projection()
    assert axes.shape == (rec["dim"], rec["bits"]) and mean.shape == (rec["dim"],)
    with pytest.raises(ValueError):
        codes.CodeParams(bits=100)
    with pytest.raises(ValueError):
        codes.cylinder_bits(np.zeros((2, 10), np.float32))


def test_bench_search_pieces_on_synthetic_minutiae(world, tmp_path):
    """The bench's recall protocol and timing run on small synthetic data (the FVC run is the bench)."""
    from fpverify.bench import search as bs

    rng = np.random.default_rng(5)
    fingers = [finger(rng, n=40) for _ in range(6)]
    temps, ident = [], []
    for f_i, f in enumerate(fingers):
        for k in range(8):  # as FVC: the registry's 5 presses searched against 3 in the gallery
            temps.append(impression(rng, f))
            ident.append((("s", f_i), k))
    r = bs.recall(temps, ident, bs.score_matrix(temps, "codes"), 1000, 50, matcher.THRESHOLDS["fmr_1e-4"])
    assert r["pairs"] == 6 * 8 * 7 and r["enrollment_trials"] == 6 * 8 and 0.5 <= r["pair_recall"] <= 1.0
    assert r["enrollments_flagged_exhaustive"] > 0 and 0.0 <= r["enrollment_recall"] <= 1.0
    from fpverify.bench.search_speed import speed

    sp = speed(temps, 3000, 20, 2, 40, 3)
    assert sp["gallery_rows"] == 3000 and sp["first_stage_per_s"] > 0 and sp["snapshot_load_s"] >= 0
    assert 512 <= sp["bytes_per_template_arrays"] <= 560
    res = {
        "gallery_size": 3000,
        "shortlist": 20,
        "threshold": "fmr_1e-4",
        "probes_per_enrollment": bs.PROBES,
        "speed": sp,
        "ratio_to_baseline": 1.0,
        "fvc_codes": r,
    }
    text = bs.report(res)
    assert "| fvc | codes |" in text and "over 5 x 3,000 comparisons" in text and "enrollment of 5 presses" in text


def test_bench_search_refuses_bad_options_clearly(tmp_path):
    from typer.testing import CliRunner

    from fpverify.cli import app

    run = CliRunner().invoke
    r = run(app, ["bench", "search", "--gallery-size", "0", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "at least 1" in r.output and "Traceback" not in r.output
    r = run(app, ["bench", "search", "--point", "fmr_1e-9", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--point must be one of" in r.output
    r = run(app, ["bench", "search", "--datasets", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "FPVERIFY_DATASETS" in r.output
