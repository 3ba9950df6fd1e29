"""Research (issue 17 part 3, docs/matcher.md "Speed of the kernels"): the 1:1 compare of now against
the compare of commit BEFORE (default 14a4de4, before the vectorised relaxation; set BEFORE=<rev> to
compare with another revision's kernels), on the same templates in one process,
timed alternately pair by pair, each path first on every other pair: the first comparison of a pair
pays for bringing its templates into the cache (about 7 µs), so a fixed order favours the second
path. Run from the project root (it reads the old kernels from git):

    OPENBLAS_NUM_THREADS=1 [BEFORE=<rev>] .venv/bin/python scripts/research/compare_speed_before.py [sensor|native]
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets
from fpverify.matcher import matching

BEFORE = os.environ.get("BEFORE", "14a4de4")
src = subprocess.run(["git", "show", f"{BEFORE}:matcher/kernels.py"], capture_output=True, text=True, check=True).stdout
path = Path(tempfile.mkdtemp()) / "kernels_before.py"
path.write_text(src.replace('"cache": True', '"cache": False'))
spec = importlib.util.spec_from_file_location("kernels_before", path)
old_kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old_kernels)


def before(a, b, fp, ip):
    """compare() as it was: the old kernels; 14a4de4 multiplied by a transposed view, later ones by desc_t."""
    la, lb = a.local, b.local
    ga, ba = a.valid_grid
    gb, bb = b.valid_grid
    right = lb.desc.T if BEFORE == "14a4de4" else b.desc_t
    return float(old_kernels.consolidate(la.desc @ right, la.xy, la.unit, a.geometry, ga, ba, lb.xy, lb.unit,
                                         b.geometry, gb, bb, fp, ip))


root = datasets.default_root()
for cond in sys.argv[1:] or ("sensor", "native"):
    by_set = []
    for name in datasets.available_sets(root):
        images, dpi = datasets.load_condition(root, name, cond)
        mine = []
        for _, img in sorted(images.items(), key=lambda kv: (kv[0][1], kv[0][0]))[:16]:
            try:
                t = matcher.extract(img, dpi=dpi)
            except ValueError:
                continue
            _ = t.geometry, t.desc_t
            mine.append(t)
        by_set.append(mine)
    pairs = [(a, b) for ts in by_set for i, a in enumerate(ts) for b in ts[i + 1:]]
    fp, ip = matching._packed(pairs[0][0].params)
    for a, b in pairs[:50]:  # compile and warm both
        before(a, b, fp, ip)
        matcher.compare(a, b)
    paths = {"old": lambda a, b: before(a, b, fp, ip), "new": matcher.compare}
    times, diff = {"old": [], "new": []}, 0.0
    for k, (a, b) in enumerate(pairs * 2):
        score = {}
        for name in ("old", "new") if k % 2 else ("new", "old"):
            t0 = time.perf_counter_ns()
            score[name] = paths[name](a, b)
            times[name].append(time.perf_counter_ns() - t0)
        diff = max(diff, abs(score["old"] - score["new"]))
    t_old, t_new = times["old"], times["new"]
    m_old, m_new = np.median(t_old) / 1e3, np.median(t_new) / 1e3
    print(f"{cond}: {len(pairs)} pairs x2, median compare {m_old:.1f} µs before -> {m_new:.1f} µs now "
          f"(x{m_new / m_old:.2f}); max |score difference| {diff:.1e}")
