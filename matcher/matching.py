"""1:1 comparison: MCC local similarities consolidated by LSS-R relaxation.

1. Local similarity matrix: dot products of the two templates' cylinders (cosine, in [0, 1]);
   pairs whose directions differ by more than `max_rotation` are dropped (impressions are never
   rotated that much).
2. Local Similarity Sort: the `n_relax_pairs` most similar minutia pairs are candidates.
3. Relaxation: each candidate's weight is repeatedly reinforced by the candidates that are
   geometrically compatible with it (same distance, same relative direction and same radial
   angle on both sides: rigid-transform invariants), so an isolated look-alike pair fades and a
   consistent constellation keeps its weight.
4. LSS-R score: the mean relaxed weight of the `nP` most efficient pairs (weight kept / weight
   at start), nP growing with the smaller template's size.
5. Global consolidation: the relaxed pairs give a rigid alignment; every minutia is then paired
   within tolerances and matched^2 / (minutiae of each side inside the other's finger area) is
   the pairing score. Final score = LSS-R ** score_mix * pairing ** (1 - score_mix).

Score scale: a float in [0, 1]; 0 when either template has fewer than two usable cylinders.
Impostor pairs exceed ~0.095 once in a thousand on the FVC sets; the operating thresholds
measured by the benchmark are in `matcher.THRESHOLDS`.
"""

from __future__ import annotations

import numpy as np

from matcher.params import MatchParams
from matcher.template import Template


def _np_pairs(n: int, p: MatchParams) -> int:
    z = 1.0 / (1.0 + np.exp(-p.np_tau * (n - p.np_mu)))
    return int(p.min_np + round(z * (p.max_np - p.min_np)))


def local_similarity(a: Template, b: Template) -> np.ndarray:
    """(Ka, Kb) cylinder similarities; pairs rotated more than `max_rotation` are zeroed."""
    la, lb = a.local, b.local
    sim = la.desc @ lb.desc.T
    sim[(la.unit @ lb.unit.T) < np.cos(a.params.max_rotation)] = 0.0
    return sim


def compare(a: Template, b: Template, params: MatchParams | None = None) -> float:
    p = params or a.params
    la, lb = a.local, b.local
    na, nb = la.count, lb.count
    if na < 2 or nb < 2:
        return 0.0
    sim = local_similarity(a, b)

    # Local Similarity Sort: the best candidate pairs.
    nr = min(p.n_relax_pairs, na * nb)
    flat = sim.ravel()
    idx = np.argpartition(flat, flat.size - nr)[flat.size - nr :]
    lam0 = flat[idx]
    ia, ib = np.divmod(idx, nb)

    # Compatibility of every two candidate pairs (k, l): the rigid invariants (distance, relative
    # direction, radial angle) agree on both sides. Gaussian in each, folded into one exp.
    d = np.take(a.geometry, ia[:, None] * na + ia, axis=1)
    d -= np.take(b.geometry, ib[:, None] * nb + ib, axis=1)
    np.abs(d, out=d)
    d[1:] = np.pi - np.abs(d[1:] - np.pi)  # |wrap(x)| for x in (-2pi, 2pi)
    d *= d
    rho = np.exp(_weights(p) @ d.reshape(3, -1)).reshape(nr, nr)
    # Two pairs that reuse a minutia cannot both be right (this also clears the diagonal).
    rho *= (ia[:, None] != ia) & (ib[:, None] != ib)
    # Relaxation: lam <- w lam + (1 - w) rho lam / (nr - 1), n times: one matrix power.
    rho *= (1.0 - p.relax_w) / max(nr - 1, 1)
    rho.flat[:: nr + 1] = p.relax_w
    lam = lam0
    for _ in range(p.relax_iters):
        lam = rho @ lam

    n_p = min(_np_pairs(min(na, nb), p), nr)
    eff = lam / np.maximum(lam0, 1e-9)
    top = np.argpartition(eff, nr - n_p)[nr - n_p :]
    wt = lam[top]
    lss = float(wt.mean())
    if p.score_mix >= 1.0:
        return lss
    return lss**p.score_mix * _pairing(a, b, ia[top], ib[top], wt, p) ** (1.0 - p.score_mix)


def _pairing(a: Template, b: Template, pa: np.ndarray, pb: np.ndarray, w: np.ndarray, p: MatchParams) -> float:
    """Global consolidation: align with the relaxed pairs, then count minutiae that pair up.

    Returns matched^2 / (a's minutiae inside b's footprint * b's inside a's), in [0, 1]: the
    fraction of the overlapping minutiae that agree, which is what separates a partial genuine
    overlap from an impostor that happens to share a few local structures.
    """
    la, lb = a.local, b.local
    # Rotation: weighted mean of the pairs' direction changes (as cos, sin); translation: weighted
    # mean offset after rotating.
    ua, ub = la.unit[pa], lb.unit[pb]
    cs = w @ np.stack([(ua * ub).sum(1), ua[:, 0] * ub[:, 1] - ua[:, 1] * ub[:, 0]], axis=1)
    norm = float(np.hypot(cs[0], cs[1]))
    if norm <= 0:
        return 0.0
    c, s = float(cs[0]) / norm, float(cs[1]) / norm
    rot_t = np.array([[c, s], [-s, c]], np.float32)  # row vectors: xy @ rot_t rotates by +angle
    t = (w @ (lb.xy[pb] - la.xy[pa] @ rot_t)) / float(w.sum())
    xa = la.xy @ rot_t + t  # a's minutiae in b's frame
    d2 = (xa * xa).sum(1)[:, None] + lb.sqnorm - 2.0 * (xa @ lb.xy.T)
    hit = (d2 < p.pair_tol_d**2) & (((la.unit @ rot_t) @ lb.unit.T) > np.cos(p.pair_tol_a))
    matched = min(np.count_nonzero(hit.any(1)), np.count_nonzero(hit.any(0)))
    if matched == 0:
        return 0.0
    ov_a = b.footprint_count(xa)
    ov_b = a.footprint_count((lb.xy - t) @ rot_t.T)
    return matched * matched / (max(ov_a, p.min_overlap) * max(ov_b, p.min_overlap))


_WEIGHTS: dict[MatchParams, np.ndarray] = {}


def _weights(p: MatchParams) -> np.ndarray:
    w = _WEIGHTS.get(p)
    if w is None:
        w = -0.5 / np.array([p.rho_sigma_d, p.rho_sigma_a, p.rho_sigma_a], np.float32) ** 2
        _WEIGHTS[p] = w
    return w
