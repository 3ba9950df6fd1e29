"""Shared by the compare-speed research scripts: the templates they time and the fair timing loop.

The first comparison of a pair pays for bringing its templates into the cache (about 7 µs), so each
path runs first on every other pair; a fixed order would favour the second path.
"""

import time

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets


def pairs_of(condition: str, params=None, per_set: int = 16) -> list:
    """Every pair within a set of the first `per_set` images (by impression, then finger) of each
    FVC set, templates ready to compare (cylinders and geometry built); `params` re-reads them so."""
    root = datasets.default_root()
    pairs = []
    for name in datasets.available_sets(root):
        images, dpi = datasets.load_condition(root, name, condition)
        mine = []
        for _, img in sorted(images.items(), key=lambda kv: (kv[0][1], kv[0][0]))[:per_set]:
            try:
                t = matcher.extract(img, dpi=dpi)
            except ValueError:
                continue
            if params is not None:
                t = matcher.Template.from_bytes(t.to_bytes(), params=params)
            _ = t.geometry, t.desc_t
            mine.append(t)
        pairs += [(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]]
    return pairs


def alternate(pairs: list, paths: dict) -> tuple[dict, float]:
    """Median µs of each of two paths over the pairs (twice, warmed up first) and the largest score
    difference between them."""
    for a, b in pairs[:50]:  # compile and warm both
        for f in paths.values():
            f(a, b)
    first, second = paths
    times, diff = {k: [] for k in paths}, 0.0
    for k, (a, b) in enumerate(pairs * 2):
        score = {}
        for name in (first, second) if k % 2 else (second, first):
            t0 = time.perf_counter_ns()
            score[name] = paths[name](a, b)
            times[name].append(time.perf_counter_ns() - t0)
        diff = max(diff, abs(score[first] - score[second]))
    return {k: float(np.median(v)) / 1e3 for k, v in times.items()}, diff
