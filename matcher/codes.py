"""Compact codes for the first stage of 1:N search: every cylinder as a short bit string.

A cylinder (descriptors.build, 312 floats) becomes `bits` sign bits: the cylinder minus its own mean,
minus the mean cylinder, projected on the first `bits` principal directions of cylinders (`fit`).
Similar cylinders share most bits, so the Hamming distance of two codes stands in for their dot
product. The directions were fitted on the UPEK set, which no benchmark uses (`codes_pca.json` says
so): nothing here is fitted on the FVC sets the search is measured on.

A template keeps its `gallery_cylinders` best-quality cylinders (as `gallery.Gallery` does for the
float search), stored word-major as (words, m) uint64 so the compiled scan below compares one probe
word with all m gallery words in a row (vectorised popcount). A template with fewer cylinders
repeats its first ones: a repeated cylinder never changes a minimum, so no padding value can win.

Template score (same shape as the float first stage): for each probe cylinder its smallest Hamming
distance within the template; the score is 1 - 2 * mean(k smallest) / bits, in [-1, 1].
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fpverify.matcher.template import Template

_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
PROJECTION_FILE = Path(__file__).with_name("codes_pca.json")


@dataclass(frozen=True)
class CodeParams:
    bits: int = 128  # a multiple of 64, at most the projection's length
    gallery_cylinders: int = 32  # stored per template (bytes a template: bits / 8 * this)
    probe_cylinders: int = 32
    topk: int = 12  # probe cylinders averaged into the score

    @property
    def words(self) -> int:
        return self.bits // 64

    def __post_init__(self) -> None:
        if self.bits <= 0 or self.bits % 64:
            raise ValueError("bits must be a positive multiple of 64")
        if not 1 <= self.topk <= self.probe_cylinders or self.gallery_cylinders < 1:
            raise ValueError("need 1 <= topk <= probe_cylinders and gallery_cylinders >= 1")


DEFAULT_CODES = CodeParams()


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f2").tobytes()).decode("ascii")


def fit(desc: np.ndarray, bits: int, trained_on: list[str]) -> dict:
    """Projection record (JSON-able) from (N, D) cylinders: mean and the first `bits` principal axes."""
    x = np.asarray(desc, np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    if vt.shape[0] < bits:
        raise ValueError(f"need at least {bits} cylinders of {x.shape[1]} values to fit {bits} bits")
    return {
        "format": "fpverify-codes-1",
        "dim": int(x.shape[1]),
        "bits": bits,
        "trained_on": trained_on,
        "cylinders": int(len(x)),
        "mean": _b64(mean),
        "axes": _b64(vt[:bits].T),
    }


@lru_cache(maxsize=2)
def projection(path: Path = PROJECTION_FILE) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), axes (D, bits)) float32 of the shipped projection."""
    rec = json.loads(Path(path).read_text())
    d, b = rec["dim"], rec["bits"]
    mean = np.frombuffer(base64.b64decode(rec["mean"]), "<f2").astype(np.float32)
    axes = np.frombuffer(base64.b64decode(rec["axes"]), "<f2").astype(np.float32).reshape(d, b)
    return mean, axes


def cylinder_bits(desc: np.ndarray, p: CodeParams = DEFAULT_CODES) -> np.ndarray:
    """(K, D) float cylinders -> (K, words) uint64 codes."""
    mean, axes = projection()
    d = np.asarray(desc, np.float32)
    if d.shape[1] != len(mean) or p.bits > axes.shape[1]:
        raise ValueError(f"codes need {len(mean)}-value cylinders and at most {axes.shape[1]} bits")
    signs = ((d - d.mean(axis=1, keepdims=True) - mean) @ axes[:, : p.bits]) > 0  # (K, bits)
    packed = np.packbits(signs, axis=1, bitorder="little")  # (K, bits / 8) uint8
    return np.ascontiguousarray(packed).view("<u8").reshape(len(d), p.words)


def _best(t: Template, n: int) -> np.ndarray:
    """Rows of t.local.desc of the `n` best-quality cylinders (all when fewer)."""
    loc = t.local
    if loc.count <= n:
        return loc.desc
    q = t.minutiae[loc.index, 3]
    return loc.desc[np.sort(np.argsort(-q, kind="stable")[:n])]


def gallery_code(t: Template, p: CodeParams = DEFAULT_CODES) -> tuple[np.ndarray, int]:
    """(words, m) uint64 code of a gallery template and its number of distinct cylinders (0: none)."""
    rows = cylinder_bits(_best(t, p.gallery_cylinders), p)  # (k, words)
    m = p.gallery_cylinders
    out = np.zeros((p.words, m), np.uint64)
    k = len(rows)
    if k:
        out[:] = rows[np.arange(m) % k].T
    return out, k


def probe_code(t: Template, p: CodeParams = DEFAULT_CODES) -> np.ndarray:
    """(k, words) uint64 codes of the probe's best cylinders."""
    return cylinder_bits(_best(t, p.probe_cylinders), p)


@intrinsic
def _popcount(typingctx, x):
    """LLVM ctpop on a uint64 (one instruction; vectorised where the CPU has it)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@njit(**_JIT)
def scan(probe, gallery, counts, start, stop, topk, bits, out):
    """Scores of probe (P, W) against gallery[start:stop] (T, W, M) into out[start:stop]."""
    npr, nw = probe.shape
    m = gallery.shape[2]
    k = min(topk, npr)
    dist = np.empty(m, np.uint64)
    best = np.empty(k, np.int64)
    for t in range(start, stop):
        if counts[t] == 0 or npr == 0:
            out[t] = 0.0
            continue
        nb = 0  # sorted ascending buffer of the k smallest per-cylinder minima
        for i in range(npr):
            d = np.uint64(1 << 20)
            if nw == 2:  # the shipped code length: one pass, no scratch array
                p0, p1 = probe[i, 0], probe[i, 1]
                for j in range(m):
                    d = min(d, _popcount(p0 ^ gallery[t, 0, j]) + _popcount(p1 ^ gallery[t, 1, j]))
            else:  # any length: word by word, the last word's pass takes the minimum
                for j in range(m):
                    dist[j] = 0
                for w in range(nw - 1):
                    pw = probe[i, w]
                    for j in range(m):
                        dist[j] += _popcount(pw ^ gallery[t, w, j])
                pw = probe[i, nw - 1]
                for j in range(m):
                    d = min(d, dist[j] + _popcount(pw ^ gallery[t, nw - 1, j]))
            v = np.int64(d)
            if nb < k:
                q = nb
                nb += 1
            elif v < best[k - 1]:
                q = k - 1
            else:
                continue
            while q > 0 and best[q - 1] > v:
                best[q] = best[q - 1]
                q -= 1
            best[q] = v
        s = 0
        for q in range(nb):
            s += best[q]
        out[t] = 1.0 - 2.0 * s / (nb * bits)


def scores(
    probe: np.ndarray,
    gallery: np.ndarray,
    counts: np.ndarray,
    p: CodeParams = DEFAULT_CODES,
    start: int = 0,
    stop: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """First-stage scores (T,) float32 of a probe code against packed gallery codes."""
    t = gallery.shape[0]
    out = np.zeros(t, np.float32) if out is None else out
    stop = t if stop is None else stop
    if len(probe):
        scan(probe, gallery, counts, start, stop, p.topk, p.bits, out)
    else:
        out[start:stop] = 0.0
    return out
