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
