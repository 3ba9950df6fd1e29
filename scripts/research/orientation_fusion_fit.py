"""Fit score + flow-agreement fusions on two FVC years, score them on the third (issue 17 part 2).

Reads the per-set comparison tables `orientation_fusion.py` wrote and prints, per condition, the mean
all-pairs EER / FMR1000 of the 12 sets held out (each year's fusion parameters chosen on the other
two years' sets) against the plain score on the same comparisons. `quality` picks the pairing's
quality exponent (0-3) the same way.

    .venv/bin/python scripts/research/orientation_fusion_fit.py DIR [--conditions sensor,native] [--base q_two]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from fpverify.bench import datasets, metrics

YEARS = ("2000", "2002", "2004")


BASE = "score"  # the score the fusions start from (--base: score, q_one, q_two, q_three)


def fused(t: dict, form: str, a0: float, k: float) -> np.ndarray:
    s, agree, blocks = t[BASE], t["agree_plus"], t["blocks_plus"]
    g = np.clip((agree - a0) / (1.0 - a0), 0.0, 1.0)
    if form == "product":
        return s * g**k
    if form == "quality":  # the pairing's quality exponent, 0 (every minutia 1) to 3, chosen per fold
        return t[{0: "score", 1: "q_one", 2: "q_two", 3: "q_three"}[int(k)]]
    if form == "shrunk":  # little shared area says little: blend the agreement toward 1 there
        w = blocks / (blocks + 200.0)
        return s * (w * g + (1.0 - w)) ** k
    raise ValueError(form)


GRID = {
    "quality": [(0.0, 0), (0.0, 1), (0.0, 2), (0.0, 3)],
    "product": list(itertools.product((0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9), (0.25, 0.5, 1.0, 2.0, 4.0))),
    "shrunk": list(itertools.product((0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9), (0.25, 0.5, 1.0, 2.0, 4.0, 8.0))),
}


def set_rates(t: dict, scores: np.ndarray) -> dict:
    g = t["genuine"]
    return metrics.rates(scores[g], scores[~g])


def objective(tables: list[dict], form: str, a0: float, k: float) -> float:
    r = [set_rates(t, fused(t, form, a0, k)) for t in tables]
    return float(np.mean([x["EER"] for x in r]) + 0.25 * np.mean([x["FMR1000"] for x in r]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--conditions", default="sensor,native")
    ap.add_argument("--base", default="score", help="score the orientation fusions start from")
    args = ap.parse_args()
    global BASE
    BASE = args.base
    out = {}
    for condition in args.conditions.split(","):
        tables = {n: dict(np.load(args.dir / f"{n}-{condition}.npz")) for n in datasets.FVC_SETS}
        base = {n: set_rates(t, t[BASE]) for n, t in tables.items()}
        res = {"plain": {"EER": np.mean([b["EER"] for b in base.values()]),
                         "FMR1000": np.mean([b["FMR1000"] for b in base.values()])}}  # fmt: skip
        for form, grid in GRID.items():
            held, chosen = {}, {}
            for year in YEARS:
                train = [t for n, t in tables.items() if n[3:7] != year]
                best = min(grid, key=lambda p, train=train: objective(train, form, *p))
                chosen[year] = best
                for n, t in tables.items():
                    if n[3:7] == year:
                        held[n] = set_rates(t, fused(t, form, *best))
            res[form] = {
                "EER": float(np.mean([h["EER"] for h in held.values()])),
                "FMR1000": float(np.mean([h["FMR1000"] for h in held.values()])),
                "chosen": chosen,
                "per_set": {n: round(100 * h["EER"], 2) for n, h in held.items()},
            }
        comparisons = sum(len(t["score"]) for t in tables.values())
        print(f"{condition} ({comparisons:,} comparisons):")
        for k, v in res.items():
            print(f"  {k:8s} EER {100 * v['EER']:.2f} %  FMR1000 {100 * v['FMR1000']:.2f} %  {v.get('chosen', '')}")
        print("  plain per set", {n: round(100 * b["EER"], 2) for n, b in base.items()})
        for form in GRID:
            print(f"  {form} per set", res[form]["per_set"])
        out[condition] = res
    (args.dir / f"fit-{BASE}.json").write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
