from __future__ import annotations

import numpy as np
import pytest

from fpverify import matcher
from fpverify.matcher.template import Template
from tests.matcher.synthetic import SHAPE, finger, impression, move


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(2024)
    fingers = [finger(rng) for _ in range(12)]
    return [[impression(rng, f) for _ in range(3)] for f in fingers]


def test_genuine_scores_above_impostors(population):
    gen = [matcher.compare(r[i], r[j]) for r in population for i in range(3) for j in range(3) if i < j]
    imp = [
        matcher.compare(a[0], b[1]) for ia, a in enumerate(population) for ib, b in enumerate(population) if ia != ib
    ]
    # Noisy impressions (20 % missed, 10 % spurious, 2 px jitter, up to 23 degrees): fully separable.
    assert min(gen) > max(imp)
    assert all(0.0 <= s <= 1.0 for s in gen + imp)


def test_invariant_to_rotation_and_translation():
    rng = np.random.default_rng(5)
    m = finger(rng, n=40, shape=(500, 500))
    # keep points near the centre so the moved copy stays inside the image
    m[:, :2] = (m[:, :2] - 250) * 0.6 + 250
    a = Template(m, (500, 500))
    base = matcher.compare(a, a)
    for angle, tx, ty in [(0.3, 20, -15), (-0.5, -30, 10), (0.0, 40, 40)]:
        b = Template(move(m, angle, tx, ty, shape=(500, 500)), (500, 500))
        assert matcher.compare(a, b) == pytest.approx(base, rel=0.1)


def test_self_score_is_high_and_empty_is_zero(population):
    t = population[0][0]
    assert matcher.compare(t, t) > 0.3
    empty = Template(np.zeros((0, 5)), SHAPE)
    one = Template(t.minutiae[:1], SHAPE)
    assert matcher.compare(t, empty) == 0.0
    assert matcher.compare(empty, t) == 0.0
    assert matcher.compare(one, t) == 0.0


def test_roughly_symmetric(population):
    for r in population[:4]:
        ab, ba = matcher.compare(r[0], r[1]), matcher.compare(r[1], r[0])
        assert ab == pytest.approx(ba, rel=0.05, abs=1e-3)


def _load_pairs(datasets_dir, name, fingers=3):
    from PIL import Image

    imgs = {}
    for f in range(101, 101 + fingers):
        for i in (1, 2, 3):
            imgs[(f, i)] = np.asarray(Image.open(datasets_dir / name / f"{f}_{i}.png").convert("L"))
    return imgs


@pytest.mark.datasets
def test_real_images_genuine_beats_impostor(datasets_dir):
    imgs = _load_pairs(datasets_dir, "fvc2002_db1_b")
    tm = {k: matcher.extract(v, dpi=500) for k, v in imgs.items()}
    gen = [matcher.compare(tm[(f, 1)], tm[(f, i)]) for f in range(101, 104) for i in (2, 3)]
    imp = [matcher.compare(tm[(f, 1)], tm[(g, 1)]) for f in range(101, 104) for g in range(101, 104) if f != g]
    assert np.median(gen) > max(imp)
    # A template survives its binary form unchanged.
    t = tm[(101, 1)]
    assert matcher.compare(Template.from_bytes(t.to_bytes()), tm[(101, 2)]) == matcher.compare(t, tm[(101, 2)])


def test_top_pairs_match_a_full_sort():
    from fpverify.matcher import kernels

    rng = np.random.default_rng(11)
    sim = rng.random((30, 25)).astype(np.float32)
    ua = rng.normal(size=(30, 2))
    ub = rng.normal(size=(25, 2))
    ua /= np.linalg.norm(ua, axis=1, keepdims=True)
    ub /= np.linalg.norm(ub, axis=1, keepdims=True)
    gate = np.cos(np.pi / 2)
    ia, ib, lam0 = kernels.top_pairs(sim, gate, ua, ub, 48)
    allowed = np.where(ua @ ub.T >= gate, sim, -1.0).ravel()
    want = np.sort(allowed)[::-1][:48]
    assert np.allclose(lam0, want)
    assert np.allclose(sim[ia, ib], lam0)
    # fewer allowed pairs than asked for: only those come back
    ia, ib, lam0 = kernels.top_pairs(sim[:2, :2], 1.1, ua[:2], ub[:2], 48)
    assert len(ia) == len(ib) == len(lam0) == 0


def test_warm_up_compiles_and_compare_still_works(population):
    matcher.warm_up()
    a, b = population[0][0], population[0][1]
    assert matcher.compare(a, b) > 0.0


def test_vectorised_exp_matches_libm():
    from fpverify.matcher import kernels

    x = np.concatenate([-np.geomspace(1e-12, 700, 5000), [0.0, -0.5, -745.0, -1e6]])
    out = np.empty_like(x)
    kernels.exp_neg(x, out)
    ok = x >= -700
    assert np.max(np.abs(out[ok] - np.exp(x[ok])) / np.exp(x[ok])) < 1e-14
    assert np.all(out[~ok] < 1e-300)  # far below anything a weight can show


def _relax_reference(geo_a, geo_b, na, nb, ia, ib, lam0, wd, wa, w, iters):
    """LSS-R as written in the paper, one libm exp a pair: what kernels.relax must reproduce."""
    def wrapped(x):
        x = abs(x)
        return x if x <= np.pi else 2 * np.pi - x

    nr = len(ia)
    rho = np.zeros((nr, nr))
    for k in range(nr):
        for m in range(nr):
            if ia[k] == ia[m] or ib[k] == ib[m]:
                continue
            ga, gb = ia[k] * na + ia[m], ib[k] * nb + ib[m]
            dd = float(geo_a[0, ga] - geo_b[0, gb])  # float32 differences, as the kernel takes them
            d1 = wrapped(float(geo_a[1, ga] - geo_b[1, gb]))
            d2 = wrapped(float(geo_a[2, ga] - geo_b[2, gb]))
            rho[k, m] = (1 - w) / max(nr - 1, 1) * np.exp(wd * dd * dd + wa * (d1 * d1 + d2 * d2))
    lam = lam0.copy()
    for _ in range(iters):
        lam = w * lam + rho @ lam
    return lam


def test_relaxation_matches_the_reference(population):
    from fpverify.matcher import kernels

    a, b = population[0][0], population[0][1]
    sim = a.local.desc @ b.desc_t
    ia, ib, lam0 = kernels.top_pairs(sim, 0.0, a.local.unit, b.local.unit, 48)
    args = (a.geometry, b.geometry, a.local.count, b.local.count, ia, ib, lam0, -0.5 / 36, -8.0, 0.2, 5)
    got = kernels.relax(*args)
    want = _relax_reference(*args)
    assert len(ia) == 48
    assert np.allclose(got, want, rtol=1e-12, atol=1e-15)
    assert not np.allclose(got, lam0)  # the relaxation did something


def _pairing(w_a, w_b, xy_a, u_a, xy_b, u_b, sigma_d=0.0):
    from fpverify.matcher import kernels

    grid = np.ones((40, 40), bool)  # a 320 px square finger, 8 px blocks
    anchors = np.arange(3)
    return kernels.pairing(
        xy_a, u_a, w_a, xy_b, u_b, w_b, anchors, anchors, np.ones(3), grid, 8, grid, 8, 20.0, np.cos(np.pi / 6), 8, 1,
        sigma_d,
    )  # fmt: skip


def test_low_quality_minutiae_neither_make_nor_spoil_the_pairing():
    rng = np.random.default_rng(3)
    n, extra = 20, 10
    xy = np.stack([rng.uniform(20, 300, n + extra), -rng.uniform(20, 300, n + extra)], axis=1)  # y up
    ang = rng.uniform(0, 2 * np.pi, n + extra)
    u = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    xy_a, u_a = xy[:n], u[:n]  # b holds a's minutiae and 10 more that a lacks (spurious detections)
    ones = np.ones(n + extra)
    assert _pairing(ones[:n], ones, xy_a, u_a, xy, u) == pytest.approx(n * n / (n * (n + extra)))
    # the 10 extra ones are doubtful (quality 0): they no longer count against the match
    doubtful = np.r_[np.ones(n), np.zeros(extra)]
    assert _pairing(ones[:n], doubtful, xy_a, u_a, xy, u) == pytest.approx(1.0)
    # the true ones at any quality: still a perfect pairing; the spurious at full weight spoil it again
    q = rng.uniform(0.3, 1.0, n) ** 2
    assert _pairing(q, np.r_[q, np.zeros(extra)], xy_a, u_a, xy, u) == pytest.approx(1.0)
    assert _pairing(q, np.r_[q, np.ones(extra)], xy_a, u_a, xy, u) < 0.8


def test_a_template_without_any_quality_counts_every_minutia(population):
    from fpverify.matcher.params import MatchParams

    def unrated(t, params=None):  # an ISO record from a device that writes quality 0 ("not reported")
        m = t.minutiae.copy()
        m[:, 3] = 0.0
        return Template(m, t.shape, mask=t.mask, mask_block=t.mask_block, params=params)

    plain = MatchParams(pair_quality_power=0.0)
    a, b = population[0][0], population[0][1]
    score = matcher.compare(unrated(a), unrated(b))
    assert score == matcher.compare(unrated(a, plain), unrated(b, plain))
    assert score > max(matcher.compare(unrated(a), unrated(other[1])) for other in population[1:])


def test_a_pair_that_only_just_pairs_counts_little():
    rng = np.random.default_rng(8)
    n = 20
    xy = np.stack([rng.uniform(20, 300, n), -rng.uniform(20, 300, n)], axis=1)
    ang = rng.uniform(0, 2 * np.pi, n)
    u = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    ones = np.ones(n)
    # b: the same minutiae, the last 5 moved 15 px (still within the 20 px tolerance, as chance pairings are)
    far = xy.copy()
    far[-5:, 0] += 15.0
    assert _pairing(ones, ones, xy, u, far, u) == pytest.approx(1.0)  # a hard count cannot tell them apart
    exact = _pairing(ones, ones, xy, u, xy, u, sigma_d=8.0)
    loose = _pairing(ones, ones, xy, u, far, u, sigma_d=8.0)
    assert exact == pytest.approx(1.0)
    w = np.exp(-(15.0**2) / (2 * 8.0**2))  # what each moved pair counts (the anchors keep the alignment)
    assert loose == pytest.approx((15 + 5 * w) ** 2 / n**2, rel=0.02) and loose < 0.85
