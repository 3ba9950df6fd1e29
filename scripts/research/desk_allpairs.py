"""Research (issue 17, docs/matcher.md "Levers"): every press against every press of the 12 FVC
sets in one condition, as an .npz score matrix for desk_levers.py.

    python scripts/research/desk_allpairs.py sensor WORKDIR   # WORKDIR/cache, WORKDIR/S_sensor.npz
"""
import sys
import time
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets
from fpverify.bench.accuracy import extract_all

cond = sys.argv[1]
root = datasets.default_root()
work = Path(sys.argv[2])
cache = work / "cache"
keys, tmpl = [], []
t0 = time.time()
for name in datasets.FVC_SETS:
    images, dpi = datasets.load_condition(root, name, cond)
    t, _, _ = extract_all(images, dpi, cache, f"{name}-{cond}", lambda: None)
    for (f, i) in sorted(t):
        keys.append((name, f, i)); tmpl.append(t[(f, i)])
    print(name, "extracted", time.time() - t0, flush=True)
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
        print("row", a, time.time() - t0, flush=True)
np.savez(work / f"S_{cond}.npz", S=S, set=np.array([k[0] for k in keys]),
         finger=np.array([k[1] for k in keys]), press=np.array([k[2] for k in keys]),
         ok=np.array([x is not None for x in tmpl]))
print("done", time.time() - t0, flush=True)
