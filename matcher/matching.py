"""1:1 comparison: MCC local similarities consolidated by LSS-R relaxation.

1. Local similarity matrix: dot products of the two templates' cylinders (cosine, in [0, 1]);
   pairs whose directions differ by more than `max_rotation` are dropped (impressions are never
   rotated that much).
2. Local Similarity Sort: the `n_relax_pairs` most similar minutia pairs are candidates.
3. Relaxation: each candidate's weight is repeatedly reinforced by the candidates that are
   geometrically compatible with it (same distance, same relative direction and same radial
   angle on both sides: rigid-transform invariants), so an isolated look-alike pair fades and a
   consistent constellation keeps its weight.
4. Score: the mean relaxed weight of the `nP` most efficient pairs (weight kept / weight at
   start), nP growing with the smaller template's size.

Score scale: a float in [0, 1]; 0 when either template has fewer than two usable cylinders.
Genuine pairs typically score above 0.2, impostors below 0.1; the operating thresholds measured
by the benchmark are in `matcher.THRESHOLDS`.
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
    ia, ib = idx // nb, idx % nb

    # Compatibility of every two candidate pairs (k, l): the rigid invariants (distance, relative
    # direction, radial angle) agree on both sides. Gaussian in each, folded into one exp.
    d = np.take(a.geometry, ia[:, None] * na + ia[None, :], axis=1)
    d -= np.take(b.geometry, ib[:, None] * nb + ib[None, :], axis=1)
    np.abs(d, out=d)
    d[1:] = np.pi - np.abs(d[1:] - np.pi)  # |wrap(x)| for x in (-2pi, 2pi)
    d *= d
    rho = np.exp(np.tensordot(_weights(p), d, axes=1))
    # Two pairs that reuse a minutia cannot both be right (this also clears the diagonal).
    rho *= (ia[:, None] != ia[None, :]) & (ib[:, None] != ib[None, :])
    rho *= (1.0 - p.relax_w) / max(nr - 1, 1)

    lam = lam0
    for _ in range(p.relax_iters):
        lam = p.relax_w * lam + rho @ lam

    n_p = min(_np_pairs(min(na, nb), p), nr)
    eff = lam / np.maximum(lam0, 1e-9)
    top = np.argpartition(eff, nr - n_p)[nr - n_p :]
    return float(lam[top].mean())


_WEIGHTS: dict[MatchParams, np.ndarray] = {}


def _weights(p: MatchParams) -> np.ndarray:
    w = _WEIGHTS.get(p)
    if w is None:
        w = -0.5 / np.array([p.rho_sigma_d, p.rho_sigma_a, p.rho_sigma_a], np.float32) ** 2
        _WEIGHTS[p] = w
    return w
