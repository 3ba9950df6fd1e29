"""Research (issue 17, docs/matcher.md "Levers"): every press against every press of the 12 FVC
sets in one condition, as an .npz score matrix for desk_levers.py.

    python scripts/research/desk_allpairs.py sensor WORKDIR   # WORKDIR/cache, WORKDIR/S_sensor.npz
    python scripts/research/desk_allpairs.py sensor WORKDIR --templates C
        # the templates a `fpverify bench accuracy --cache C` run stored: each year's held-out network

The first form extracts with the shipped network (FVC2000 and 2004 seen in its training). The second
takes each FVC year's templates from a network trained without it, so that desk rows are held out.
S[probe, template] = compare(probe, template), the order the station compares in.
"""
import sys
import time
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets

KEYS = [(name, f, i) for name in datasets.FVC_SETS for f in range(101, 111) for i in range(1, 9)]


def score_matrix(tmpl: list) -> np.ndarray:
    """float32 score of every pair of templates (None: a failed extraction, scored 0)."""
    t0 = time.time()
    for x in tmpl:
        if x is not None:
            _ = x.geometry
    m = len(tmpl)
    S = np.zeros((m, m), np.float32)
    for a in range(m):
        if tmpl[a] is None:
            continue
        for b in range(m):
            if a != b and tmpl[b] is not None:
                S[a, b] = matcher.compare(tmpl[a], tmpl[b])
        if a % 80 == 0:
            print("row", a, round(time.time() - t0), flush=True)
    return S


def save(path: Path, S: np.ndarray, tmpl: list) -> None:
    np.savez(path, S=S, set=np.array([k[0] for k in KEYS]), finger=np.array([k[1] for k in KEYS]),
             press=np.array([k[2] for k in KEYS]), ok=np.array([x is not None for x in tmpl]))


def extracted(cond: str, cache: Path) -> list:
    from fpverify.bench.accuracy import extract_all

    root = datasets.default_root()
    by_key = {}
    for name in datasets.FVC_SETS:
        images, dpi = datasets.load_condition(root, name, cond)
        t, _, _ = extract_all(images, dpi, cache, f"{name}-{cond}", lambda: None)
        by_key.update({(name, f, i): v for (f, i), v in t.items()})
        print(name, "extracted", flush=True)
    return [by_key.get(k) for k in KEYS]


def stored(cond: str, cache: Path) -> list:
    from match_params_grid import load

    from fpverify.matcher.template import Template

    blobs = load(cache, cond)
    return [Template.from_bytes(blobs[n][(f, i)]) if (f, i) in blobs.get(n, {}) else None for n, f, i in KEYS]


if __name__ == "__main__":
    cond, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    if "--templates" in sys.argv:
        tmpl = stored(cond, Path(sys.argv[sys.argv.index("--templates") + 1]))
    else:
        tmpl = extracted(cond, work / "cache")
    save(work / f"S_{cond}.npz", score_matrix(tmpl), tmpl)
    print("done", flush=True)
