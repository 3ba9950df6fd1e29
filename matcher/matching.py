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
5. Global consolidation: the relaxed pairs give a rigid alignment; minutiae are then paired one to
   one (closest first) within tolerances, the alignment is refitted on those pairs and the pairing
   redone, and matched^2 / (minutiae of each side inside the other's finger area) is the pairing
   score, each minutia counted at quality ** pair_quality_power (doubtful detections count little
   either way) and each pair also by exp(-d^2 / 2 pair_sigma_d^2) of its residual d.
   Final score = (LSS-R ** score_mix * pairing ** (1 - score_mix)) ** score_power.

Score scale: a float in [0, 1]; 0 when either template has fewer than two usable cylinders.
Impostor pairs exceed about 0.12 once in a thousand on the FVC sets; the operating thresholds
are in `matcher.THRESHOLDS` (one comparison) and `matcher.decision_threshold` (best of n). Steps 2-5 run compiled (`matcher.kernels`).
"""

from __future__ import annotations

import numpy as np

from fpverify.matcher import kernels
from fpverify.matcher.params import MatchParams
from fpverify.matcher.template import Template


def compare(a: Template, b: Template, params: MatchParams | None = None) -> float:
    p = params or a.params
    la, lb = a.local, b.local
    if la.count < 2 or lb.count < 2:
        return 0.0
    sim = la.desc @ b.desc_t  # BLAS; the rest runs compiled (matcher.kernels)
    fp, ip = _packed(p)
    grid_a, block_a = a.valid_grid
    grid_b, block_b = b.valid_grid
    return float(
        kernels.consolidate(
            sim, la.xy, la.unit, la.weight, a.geometry, grid_a, block_a,
            lb.xy, lb.unit, lb.weight, b.geometry, grid_b, block_b, fp, ip,
        )  # fmt: skip
    )


_PACKED: dict[MatchParams, tuple[np.ndarray, np.ndarray]] = {}


def _packed(p: MatchParams) -> tuple[np.ndarray, np.ndarray]:
    """The consolidation parameters as the two arrays `kernels.consolidate` takes."""
    got = _PACKED.get(p)
    if got is None:
        fp = np.array(
            [
                np.cos(p.max_rotation), -0.5 / p.rho_sigma_d**2, -0.5 / p.rho_sigma_a**2, p.relax_w,
                p.pair_tol_d, np.cos(p.pair_tol_a), p.score_mix, p.np_mu, p.np_tau, p.score_power, p.pair_sigma_d,
            ],
            np.float64,
        )  # fmt: skip
        ip = np.array([p.n_relax_pairs, p.relax_iters, p.min_np, p.max_np, p.min_overlap, p.pair_refine], np.int64)
        got = _PACKED[p] = (fp, ip)
    return got
