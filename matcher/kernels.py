"""Compiled inner loops of 1:1 matching (numba): everything after the cylinder similarity matrix.

The similarity matrix itself stays a BLAS matrix product (numpy); what follows is many small steps
on a few dozen candidate pairs, where numpy's per-call overhead (about 40 calls) cost 3x the
arithmetic. numba compiles these once per machine (`cache=True`) and ships aarch64 wheels, so the
edge station needs no compiler.

Conventions as in `matching`: xy in the right-handed (y up) frame, `unit` rows are (cos, sin) of the
minutia direction, `geo` is `descriptors.pair_geometry` (3, K*K).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def top_pairs(sim: np.ndarray, cos_gate: float, ua: np.ndarray, ub: np.ndarray, nr: int):
    """Indices (ia, ib) and similarities of the `nr` most similar pairs whose rotation passes the gate.

    A sorted buffer of the best so far (descending): after the first few rows hardly any pair
    beats its last entry, so this is one pass over the matrix instead of a sort.
    """
    na, nb = sim.shape
    nr = min(nr, na * nb)
    val = np.full(nr, -1.0)
    ia = np.zeros(nr, np.int64)
    ib = np.zeros(nr, np.int64)
    for i in range(na):
        for j in range(nb):
            v = sim[i, j]
            if v <= val[nr - 1] or ua[i, 0] * ub[j, 0] + ua[i, 1] * ub[j, 1] < cos_gate:
                continue
            k = nr - 1
            while k > 0 and val[k - 1] < v:
                val[k] = val[k - 1]
                ia[k] = ia[k - 1]
                ib[k] = ib[k - 1]
                k -= 1
            val[k] = v
            ia[k] = i
            ib[k] = j
    n = nr
    while n > 0 and val[n - 1] < 0.0:
        n -= 1  # fewer pairs than nr pass the gate
    return ia[:n], ib[:n], np.maximum(val[:n], 0.0)


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.44269504088896338700e00


@njit(fastmath={"contract", "arcp", "nsz"}, **_JIT)
def exp_neg(x: np.ndarray, out: np.ndarray) -> None:
    """out = exp(x) for x <= 0 (vectorised: range reduction to 2^n * e^r, |r| <= ln2/2, degree-11 Taylor).

    Relative error below 1e-15 on [-700, 0]; arguments under -700 give 0. libm's exp does not
    vectorise; this loop does (4 doubles a lane on AVX2, 2 on the Pi's NEON).
    """
    m = x.shape[0]
    bits = np.empty(m, np.int64)
    for k in range(m):
        v = max(x[k], -700.0)
        n = math.floor(v * _LOG2E + 0.5)
        r = (v - n * _LN2_HI) - n * _LN2_LO
        p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (
            1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800)))))))))))
        out[k] = p
        bits[k] = (np.int64(n) + 1023) << 52
    scale = bits.view(np.float64)
    for k in range(m):
        out[k] *= scale[k]


@njit(**_JIT)
def relax(
    geo_a: np.ndarray,
    geo_b: np.ndarray,
    na: int,
    nb: int,
    ia: np.ndarray,
    ib: np.ndarray,
    lam0: np.ndarray,
    wd: float,
    wa: float,
    w: float,
    iters: int,
) -> np.ndarray:
    """LSS-R relaxation: each pair's weight is reinforced by the geometrically compatible pairs.

    Speed (issue 17 part 3; same weights to 1e-15): the exponents are gathered branch-free, then
    exponentiated in one vectorised pass (`exp_neg`, 7x faster than a libm call per pair), and the
    iterations run along k, where the sums are independent, so they vectorise unchanged."""
    nr = ia.shape[0]
    ex = np.empty(nr * nr, np.float64)
    keep = np.empty(nr * nr, np.float64)
    for k in range(nr):
        ra = ia[k] * na
        rb = ib[k] * nb
        for m in range(nr):
            ga = ra + ia[m]
            gb = rb + ib[m]
            dd = geo_a[0, ga] - geo_b[0, gb]
            d1 = abs(geo_a[1, ga] - geo_b[1, gb])
            d1 = min(d1, 2.0 * math.pi - d1)  # distance on the circle, branch-free
            d2 = abs(geo_a[2, ga] - geo_b[2, gb])
            d2 = min(d2, 2.0 * math.pi - d2)
            ex[k * nr + m] = wd * dd * dd + wa * (d1 * d1 + d2 * d2)
            # two pairs sharing a minutia cannot both be right (also the diagonal)
            keep[k * nr + m] = (ia[k] != ia[m]) * (ib[k] != ib[m])
    rho = np.empty(nr * nr, np.float64)
    exp_neg(ex, rho)
    scale = (1.0 - w) / max(nr - 1, 1)
    rho_t = np.empty(nr * nr, np.float64)  # column-major: the update below runs along k
    for k in range(nr):
        for m in range(nr):
            rho_t[m * nr + k] = rho[k * nr + m] * scale * keep[k * nr + m]
    lam = lam0.copy()
    nxt = np.empty(nr, np.float64)
    for _ in range(iters):
        # nxt[k] = w lam[k] + sum over m (ascending) of rho[k, m] lam[m]; the sums over k are
        # independent, so the loop vectorises without reordering any sum
        for k in range(nr):
            nxt[k] = w * lam[k]
        for m in range(nr):
            lm = lam[m]
            col = m * nr
            for k in range(nr):
                nxt[k] += rho_t[col + k] * lm
        lam[:] = nxt
    return lam


@njit(**_JIT)
def footprint_weight(grid: np.ndarray, block: int, xs: np.ndarray, ys: np.ndarray, w: np.ndarray) -> float:
    """The weights of the points (x, y-up) that fall on the finger grid (True cells, `block` pixels each)."""
    gh, gw = grid.shape
    n = 0.0
    for k in range(xs.shape[0]):
        i = math.floor(-ys[k] / block)
        j = math.floor(xs[k] / block)
        if 0 <= i < gh and 0 <= j < gw and grid[i, j]:
            n += w[k]
    return n


@njit(**_JIT)
def _pair_up(xy_a, ua, xy_b, ub, c, s, tx, ty, tol_d, cos_tol_a, ma, mb):
    """Greedy one-to-one pairing of a (moved by rotation c, s and shift tx, ty) with b.

    Candidates are pairs within `tol_d` and `cos_tol_a`, taken closest first. Fills ma/mb with the
    paired indices and returns how many.
    """
    na, nb = xy_a.shape[0], xy_b.shape[0]
    cost = np.empty(na * nb)
    ci = np.empty(na * nb, np.int64)
    cj = np.empty(na * nb, np.int64)
    nc = 0
    tol2 = tol_d * tol_d
    for i in range(na):
        x = xy_a[i, 0] * c - xy_a[i, 1] * s + tx
        y = xy_a[i, 0] * s + xy_a[i, 1] * c + ty
        ux = ua[i, 0] * c - ua[i, 1] * s
        uy = ua[i, 0] * s + ua[i, 1] * c
        for j in range(nb):
            dx = x - xy_b[j, 0]
            dy = y - xy_b[j, 1]
            d2 = dx * dx + dy * dy
            if d2 < tol2 and ux * ub[j, 0] + uy * ub[j, 1] > cos_tol_a:
                cost[nc] = d2
                ci[nc] = i
                cj[nc] = j
                nc += 1
    used_a = np.zeros(na, np.bool_)
    used_b = np.zeros(nb, np.bool_)
    n = 0
    for k in np.argsort(cost[:nc]):
        if not used_a[ci[k]] and not used_b[cj[k]]:
            used_a[ci[k]] = True
            used_b[cj[k]] = True
            ma[n] = ci[k]
            mb[n] = cj[k]
            n += 1
    return n


@njit(**_JIT)
def _fit(xy_a, xy_b, pa, pb):
    """Least-squares rigid transform (cos, sin, tx, ty) taking a's paired points onto b's."""
    n = pa.shape[0]
    max_ = 0.0
    may = 0.0
    mbx = 0.0
    mby = 0.0
    for k in range(n):
        max_ += xy_a[pa[k], 0]
        may += xy_a[pa[k], 1]
        mbx += xy_b[pb[k], 0]
        mby += xy_b[pb[k], 1]
    max_ /= n
    may /= n
    mbx /= n
    mby /= n
    sc = 0.0
    ss = 0.0
    for k in range(n):
        ax, ay = xy_a[pa[k], 0] - max_, xy_a[pa[k], 1] - may
        bx, by = xy_b[pb[k], 0] - mbx, xy_b[pb[k], 1] - mby
        sc += ax * bx + ay * by
        ss += ax * by - ay * bx
    r = math.hypot(sc, ss)
    if r <= 0.0:
        return 1.0, 0.0, mbx - max_, mby - may
    c, s = sc / r, ss / r
    return c, s, mbx - (max_ * c - may * s), mby - (max_ * s + may * c)


@njit(**_JIT)
def align(xy_a, ua, xy_b, ub, pa, pb, wt, tol_d, cos_tol_a, refine):
    """The rigid alignment and the one-to-one pairing it gives: (matched, c, s, tx, ty, ma, mb).

    The first alignment comes from the relaxed pairs (pa, pb; weights wt); `refine` times it is
    refitted by least squares on all the minutiae paired so far and the pairing redone (kept when
    it pairs more). matched is 0 when the relaxed pairs give no rotation.
    """
    na, nb = xy_a.shape[0], xy_b.shape[0]
    ma = np.empty(min(na, nb), np.int64)
    mb = np.empty(min(na, nb), np.int64)
    cs = 0.0
    sn = 0.0
    for k in range(pa.shape[0]):
        i, j = pa[k], pb[k]
        cs += wt[k] * (ua[i, 0] * ub[j, 0] + ua[i, 1] * ub[j, 1])
        sn += wt[k] * (ua[i, 0] * ub[j, 1] - ua[i, 1] * ub[j, 0])
    norm = math.hypot(cs, sn)
    wsum = wt.sum()
    if norm <= 0.0 or wsum <= 0.0:
        return 0, 1.0, 0.0, 0.0, 0.0, ma, mb
    c, s = cs / norm, sn / norm
    tx = 0.0
    ty = 0.0
    for k in range(pa.shape[0]):
        i, j = pa[k], pb[k]
        tx += wt[k] * (xy_b[j, 0] - (xy_a[i, 0] * c - xy_a[i, 1] * s))
        ty += wt[k] * (xy_b[j, 1] - (xy_a[i, 0] * s + xy_a[i, 1] * c))
    tx /= wsum
    ty /= wsum
    matched = _pair_up(xy_a, ua, xy_b, ub, c, s, tx, ty, tol_d, cos_tol_a, ma, mb)
    for _ in range(refine):
        if matched < 3:
            break
        c2, s2, tx2, ty2 = _fit(xy_a, xy_b, ma[:matched], mb[:matched])
        ma2 = np.empty_like(ma)
        mb2 = np.empty_like(mb)
        m2 = _pair_up(xy_a, ua, xy_b, ub, c2, s2, tx2, ty2, tol_d, cos_tol_a, ma2, mb2)
        if m2 <= matched:
            break
        matched, c, s, tx, ty, ma, mb = m2, c2, s2, tx2, ty2, ma2, mb2
    return matched, c, s, tx, ty, ma, mb


@njit(**_JIT)
def common_area(xy_a, w_a, grid_a, block_a, xy_b, w_b, grid_b, block_b, c, s, tx, ty):
    """(a's weight on b's finger, b's weight on a's finger) under the alignment (c, s, tx, ty)."""
    na, nb = xy_a.shape[0], xy_b.shape[0]
    ax = np.empty(na)
    ay = np.empty(na)
    for i in range(na):
        ax[i] = xy_a[i, 0] * c - xy_a[i, 1] * s + tx
        ay[i] = xy_a[i, 0] * s + xy_a[i, 1] * c + ty
    # b's minutiae back in a's frame: inverse rotation of (xy - t)
    bx = np.empty(nb)
    by = np.empty(nb)
    for j in range(nb):
        x, y = xy_b[j, 0] - tx, xy_b[j, 1] - ty
        bx[j] = x * c + y * s
        by[j] = -x * s + y * c
    return footprint_weight(grid_b, block_b, ax, ay, w_a), footprint_weight(grid_a, block_a, bx, by, w_b)


@njit(**_JIT)
def pairing(
    xy_a: np.ndarray,
    ua: np.ndarray,
    w_a: np.ndarray,
    xy_b: np.ndarray,
    ub: np.ndarray,
    w_b: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    wt: np.ndarray,
    grid_a: np.ndarray,
    block_a: int,
    grid_b: np.ndarray,
    block_b: int,
    tol_d: float,
    cos_tol_a: float,
    min_overlap: int,
    refine: int,
    sigma_d: float,
) -> float:
    """Align on the relaxed pairs (`align`), pair minutiae one to one; matched^2 / (overlap_a * overlap_b).

    Counts are weighted (`w_a`, `w_b`: quality ** pair_quality_power): a pair counts sqrt(w_a w_b),
    times exp(-residual^2 / 2 sigma_d^2) of its distance after the alignment (sigma_d 0: not), the
    common area the weights of the minutiae on it, and min_overlap minutiae of mean weight.
    """
    matched, c, s, tx, ty, ma, mb = align(xy_a, ua, xy_b, ub, pa, pb, wt, tol_d, cos_tol_a, refine)
    if matched == 0:
        return 0.0
    inv = -0.5 / (sigma_d * sigma_d) if sigma_d > 0.0 else 0.0
    m = 0.0
    for k in range(matched):
        i, j = ma[k], mb[k]
        dx = xy_a[i, 0] * c - xy_a[i, 1] * s + tx - xy_b[j, 0]
        dy = xy_a[i, 0] * s + xy_a[i, 1] * c + ty - xy_b[j, 1]
        m += math.sqrt(w_a[i] * w_b[j]) * math.exp((dx * dx + dy * dy) * inv)
    ov_a, ov_b = common_area(xy_a, w_a, grid_a, block_a, xy_b, w_b, grid_b, block_b, c, s, tx, ty)
    den = max(ov_a, min_overlap * w_a.mean()) * max(ov_b, min_overlap * w_b.mean())
    if den <= 0.0:
        return 0.0
    return m * m / den


@njit(**_JIT)
def anchors(sim, ua, ub, geo_a, geo_b, fp, ip):
    """Steps 2-4: the relaxed pairs that anchor the alignment (pa, pb, their weights) and the LSS-R score."""
    cos_gate, wd, wa, relax_w = fp[0], fp[1], fp[2], fp[3]
    np_mu, np_tau = fp[7], fp[8]
    n_relax, iters, min_np, max_np = ip[0], ip[1], ip[2], ip[3]
    na, nb = sim.shape
    ia, ib, lam0 = top_pairs(sim, cos_gate, ua, ub, n_relax)
    nr = ia.shape[0]
    if nr == 0:
        return ia, ib, lam0, 0.0
    lam = relax(geo_a, geo_b, na, nb, ia, ib, lam0, wd, wa, relax_w, iters)
    z = 1.0 / (1.0 + math.exp(-np_tau * (min(na, nb) - np_mu)))
    n_p = min(int(min_np + round(z * (max_np - min_np))), nr)
    eff = np.empty(nr)
    for k in range(nr):
        eff[k] = lam[k] / max(lam0[k], 1e-9)
    top = np.argsort(-eff)[:n_p]
    wt = lam[top]
    return ia[top], ib[top], wt, wt.mean()


@njit(**_JIT)
def consolidate(
    sim: np.ndarray,
    xy_a: np.ndarray,
    ua: np.ndarray,
    w_a: np.ndarray,
    geo_a: np.ndarray,
    grid_a: np.ndarray,
    block_a: int,
    xy_b: np.ndarray,
    ub: np.ndarray,
    w_b: np.ndarray,
    geo_b: np.ndarray,
    grid_b: np.ndarray,
    block_b: int,
    fp: np.ndarray,
    ip: np.ndarray,
) -> float:
    """The whole score from the similarity matrix. `fp`/`ip`: float/int parameters (see matching)."""
    tol_d, cos_tol_a, mix, power, sigma_d = fp[4], fp[5], fp[6], fp[9], fp[10]
    min_overlap, refine = ip[4], ip[5]
    pa, pb, wt, lss = anchors(sim, ua, ub, geo_a, geo_b, fp, ip)
    if pa.shape[0] == 0:
        return 0.0
    if mix >= 1.0:
        return lss**power
    pr = pairing(
        xy_a, ua, w_a, xy_b, ub, w_b, pa, pb, wt, grid_a, block_a, grid_b, block_b, tol_d, cos_tol_a, min_overlap,
        refine, sigma_d,
    )  # fmt: skip
    if lss <= 0.0 or pr <= 0.0:
        return 0.0
    return (lss**mix * pr ** (1.0 - mix)) ** power
