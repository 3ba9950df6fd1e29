"""Research (issue 17 part 3): binary cylinders, how fast and how accurate.

A cylinder whose cells are a step (psi_tau huge: a cell is on when its contribution exceeds psi_mu)
is a set of bits; the cosine of two such cylinders is |a & b| / sqrt(|a| |b|), which a popcount of
five 64-bit words gives exactly. This times `compare` with the float product against the same
consolidation fed by the popcount product, both on the binary cylinders (so the scores must agree),
alternating which runs first (scripts/research/compare_speed_before.py explains why). Accuracy of
binary cylinders: `MatchParams(psi_tau=1e8)` on stored templates (docs/matcher.md lever table).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/research/binary_cylinders.py [sensor|native]
"""

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
from numba import njit

from fpverify import matcher
from fpverify.matcher import kernels, matching
from fpverify.matcher.codes import _popcount
from fpverify.matcher.params import MatchParams

sys.path.insert(0, str(Path(__file__).parent))
from fair_timing import alternate, pairs_of  # noqa: E402

warnings.filterwarnings("ignore", category=RuntimeWarning)  # exp overflow of the step psi: intended
P = dataclasses.replace(MatchParams(), psi_tau=1e8)


def pack(desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, W) uint64 words of the cylinders' on-cells and (K,) float64 their counts."""
    on = desc > 0
    padded = np.zeros((on.shape[0], -(-on.shape[1] // 64) * 64), bool)
    padded[:, : on.shape[1]] = on
    words = np.packbits(padded, axis=1, bitorder="little").view(np.uint64)
    return np.ascontiguousarray(words), on.sum(axis=1).astype(np.float64)


@njit(cache=False, nogil=True, boundscheck=False)
def bit_cosine(wa, ca, wb, cb):
    na, nw = wa.shape
    nb = wb.shape[0]
    out = np.empty((na, nb), np.float32)
    for i in range(na):
        for j in range(nb):
            s = 0
            for w in range(nw):
                s += _popcount(wa[i, w] & wb[j, w])
            out[i, j] = s / np.sqrt(ca[i] * cb[j])
    return out


def compare_bits(a, b, fp, ip, bits):
    la, lb = a.local, b.local
    if la.count < 2 or lb.count < 2:
        return 0.0
    (wa, ca), (wb, cb) = bits[id(a)], bits[id(b)]
    ga, ba = a.valid_grid
    gb, bb = b.valid_grid
    return float(kernels.consolidate(bit_cosine(wa, ca, wb, cb), la.xy, la.unit, a.geometry, ga, ba, lb.xy,
                                     lb.unit, b.geometry, gb, bb, fp, ip))


for cond in sys.argv[1:] or ("sensor", "native"):
    pairs = pairs_of(cond, params=P)
    temps = {id(t): t for pair in pairs for t in pair}.values()
    bits = {id(t): pack(t.local.desc) for t in temps}
    fp, ip = matching._packed(P)
    m, diff = alternate(pairs, {"float": matcher.compare, "bits": lambda a, b: compare_bits(a, b, fp, ip, bits)})
    kb = np.mean([t.local.desc.nbytes for t in temps]) / 1e3
    print(f"{cond}: {len(pairs)} pairs x2, median compare float product {m['float']:.1f} µs, popcount product "
          f"{m['bits']:.1f} µs (x{m['bits'] / m['float']:.2f}); cylinders {kb:.1f} kB -> "
          f"{kb / 312 * 5 * 8 / 4:.1f} kB a template; max |score difference| {diff:.1e}")
