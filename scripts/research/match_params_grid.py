"""Matcher parameters chosen leaving one FVC year out (issue 17 part 2, docs/matcher.md lever table).

Reads the templates `fpverify bench accuracy --cache C` stored (extraction is the slow part; the
compare parameters are not in its cache key), scores every set's all pairs under each setting of a
grid of `MatchParams` fields, and for each FVC year picks the setting best on the other two years'
mean all-pairs EER, then reports it on the held-out year: the honest figure for a tuned parameter.

    python scripts/research/match_params_grid.py --cache C --condition sensor \
        --grid '{"max_minutiae": [40, 44, 48, 56, 64], "max_np": [6, 7, 8, 10]}' [--table]

With --table each setting also gets a line of its own over all 12 sets: mean all-pairs EER and
FMR1000, the pooled FNMR at FMR 1e-3 / 1e-4, and the median compare time against the defaults' in
the same run (the cost side of a speed lever; ratios only on a busy machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import metrics
from fpverify.matcher.params import MatchParams
from fpverify.matcher.template import Template

YEARS = ("2000", "2002", "2004")


def load(cache: Path, condition: str) -> dict[str, dict[tuple[int, int], bytes]]:
    """Template bytes by set and (finger, impression) from a bench accuracy cache (failures left out)."""
    out = {}
    for f in sorted(cache.glob(f"*-{condition}-*.json")):
        d = json.loads(f.read_text())
        out[f.name.split(f"-{condition}-")[0]] = {tuple(map(int, k.split("_"))): bytes.fromhex(v["t"])
                                                  for k, v in d.items() if v["t"]}
    return out


def all_pairs(fingers: list, items: list, score) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores (`score(a, b)`, a number or a tuple of them) of every pair of one
    set's items, in `itertools.combinations` order; `fingers[k]` says whose item k is."""
    gen, imp = [], []
    for i, j in itertools.combinations(range(len(items)), 2):
        (gen if fingers[i] == fingers[j] else imp).append(score(items[i], items[j]))
    return np.asarray(gen, np.float64), np.asarray(imp, np.float64)


def pooled_fnmr(gen, imp) -> dict[float, float]:
    """FNMR (%) at FMR 1e-3 and 1e-4, one threshold for the pooled impostor scores."""
    g, i = np.asarray(gen), np.asarray(imp)
    return {f: 100 * float(np.mean(g < metrics.threshold_at_fmr(i, f))) for f in (1e-3, 1e-4)}


@dataclasses.dataclass
class Pooled:
    """Every set's genuine and impostor scores and each comparison's time (--table)."""

    gen: list = dataclasses.field(default_factory=list)
    imp: list = dataclasses.field(default_factory=list)
    ns: list = dataclasses.field(default_factory=list)


def rates(blobs: dict, p: MatchParams, pooled: Pooled | None = None) -> dict[str, tuple[float, float]]:
    """(all-pairs EER, FMR1000) of each set under `p`; `pooled`, when given, collects the scores and
    each comparison's time (templates ready: cylinders and geometry built first)."""
    res = {}
    for name, tb in blobs.items():
        keys = sorted(tb)
        t = [Template.from_bytes(tb[k], params=p) for k in keys]
        for x in t:
            _ = x.geometry, x.desc_t

        def timed(a, b):
            t0 = time.perf_counter_ns()
            v = matcher.compare(a, b, p)
            if pooled is not None:
                pooled.ns.append(time.perf_counter_ns() - t0)
            return v

        gen, imp = all_pairs([k[0] for k in keys], t, timed)
        if pooled is not None:
            pooled.gen.append(gen)
            pooled.imp.append(imp)
        r = metrics.rates(gen, imp)
        res[name] = (r["EER"], r["FMR1000"])
    return res


def table_line(label: str, r: dict, pooled: Pooled, base_ns: float | None) -> str:
    f = pooled_fnmr(np.concatenate(pooled.gen), np.concatenate(pooled.imp))
    ns = float(np.median(pooled.ns))
    ratio = f" (x{ns / base_ns:.2f})" if base_ns else ""
    return (f"{label}: EER {100 * mean(r, YEARS):.2f} %, FMR1000 {100 * mean(r, YEARS, 1):.2f} %, pooled FNMR "
            f"{f[1e-3]:.2f} / {f[1e-4]:.2f} %, median compare {ns / 1e3:.1f} us{ratio}")


def mean(r: dict, years, i: int = 0) -> float:
    return float(np.mean([v[i] for k, v in r.items() if any(f"fvc{y}" in k for y in years)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--condition", default="sensor")
    ap.add_argument("--grid", required=True, help="JSON: field -> list of values")
    ap.add_argument("--table", action="store_true", help="a line a setting: pooled FNMR and compare time too")
    args = ap.parse_args()
    blobs = load(args.cache, args.condition)
    grid = json.loads(args.grid)
    settings = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
    pooled = Pooled() if args.table else None
    base = rates(blobs, MatchParams(), pooled)
    base_ns = float(np.median(pooled.ns)) if pooled else None
    if pooled:
        print(table_line("defaults", base, pooled, None), flush=True)
    res = {}
    for s in settings:
        key, pooled = json.dumps(s), Pooled() if args.table else None
        res[key] = rates(blobs, dataclasses.replace(MatchParams(), **s), pooled)
        if pooled:
            print(table_line(key, res[key], pooled, base_ns), flush=True)
    for s, r in res.items():
        print(s, {y: round(100 * mean(r, [y]), 2) for y in YEARS})
    held = []
    for y in YEARS:
        best = min(res, key=lambda s: mean(res[s], [o for o in YEARS if o != y]))
        held.append((100 * mean(res[best], [y]), 100 * mean(res[best], [y], 1)))
        print(f"{y} held out: {best} chosen on the others -> EER {held[-1][0]:.2f} %, FMR1000 {held[-1][1]:.2f} %"
              f" (defaults {100 * mean(base, [y]):.2f} / {100 * mean(base, [y], 1):.2f} %)")
    print(f"held out, mean of the years: EER {np.mean([h[0] for h in held]):.2f} %, FMR1000 "
          f"{np.mean([h[1] for h in held]):.2f} %; defaults {100 * mean(base, YEARS):.2f} / "
          f"{100 * mean(base, YEARS, 1):.2f} %")


if __name__ == "__main__":
    main()
