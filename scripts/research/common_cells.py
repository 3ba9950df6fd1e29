"""Research (issue 17 part 2): cylinder similarity over the cells valid in both cylinders (MCC's own rule).

The shipped local similarity is the plain dot product of two L2-normalised cylinders whose off-finger
cells are zero. Where a press is cut by the sensor's window, the same minutia's two cylinders are
valid over different cells, and each norm counts cells the other cannot see. MCC (Cappelli et al.
2010) compares two cylinders over the cells valid in both: here

    sim_ij = (a_i . b_j) / sqrt(|a_i|^2 over b_j's valid cells * |b_j|^2 over a_i's valid cells)

(three matrix products instead of one), and 0 where the common valid cells are fewer than
`min_common` of the cylinder. Scored on stored held-out templates, all pairs within each set, with
the rest of the consolidation unchanged (`kernels.consolidate` fed the new matrix).

    OVER='{"min_valid_fraction": 0.25}' python scripts/research/common_cells.py --cache C \
        --condition sensor --min-common '[null, 0.3, 0.5]'      # null: the shipped product

C: a `bench accuracy --cache` folder (the held-out networks' templates). One JSON line a setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import metrics
from fpverify.matcher import descriptors, kernels, matching
from fpverify.matcher.template import Template

sys.path.insert(0, str(Path(__file__).parent))
from match_params_grid import all_pairs, load, pooled_fnmr  # noqa: E402


def validity(t: Template) -> np.ndarray:
    """(K, D) float32: 1 where a cylinder cell lies on the finger, as `descriptors.build` decides."""
    p, loc = t.params, t.local
    grid, block = t.valid_grid
    offs = descriptors.cell_offsets(p.cyl_radius, p.cyl_ns)
    c, s = np.cos(loc.theta), np.sin(loc.theta)
    cx = loc.xy[:, None, 0] + offs[None, :, 0] * c[:, None] - offs[None, :, 1] * s[:, None]
    cy = loc.xy[:, None, 1] + offs[None, :, 0] * s[:, None] + offs[None, :, 1] * c[:, None]
    gi, gj = np.floor(-cy / block).astype(np.int64), np.floor(cx / block).astype(np.int64)
    inb = (gi >= 0) & (gi < grid.shape[0]) & (gj >= 0) & (gj < grid.shape[1])
    v = np.zeros(inb.shape, bool)
    v[inb] = grid[gi[inb], gj[inb]]
    return np.ascontiguousarray(np.repeat(v, p.cyl_nd, axis=1).astype(np.float32))


class Ready:
    """A template with its validity and squared cylinders, as both operands of the products."""

    def __init__(self, t: Template) -> None:
        _ = t.geometry, t.desc_t
        self.t, d, v = t, t.local.desc, validity(t)
        self.v, self.vt = v, np.ascontiguousarray(v.T)
        self.d2, self.d2t = d * d, np.ascontiguousarray((d * d).T)


def compare(a: Ready, b: Ready, p, min_common: float) -> float:
    la, lb = a.t.local, b.t.local
    if la.count < 2 or lb.count < 2:
        return 0.0
    den = np.sqrt((a.d2 @ b.vt) * (a.v @ b.d2t))
    sim = np.where(den > 0, (la.desc @ b.t.desc_t) / np.maximum(den, 1e-12), 0.0)
    if min_common > 0:
        sim[(a.v @ b.vt) < min_common * a.v.shape[1]] = 0.0
    sim = np.ascontiguousarray(np.minimum(sim, 1.0), np.float32)
    fp, ip = matching._packed(p)
    (ga, ba), (gb, bb) = a.t.valid_grid, b.t.valid_grid
    return float(kernels.consolidate(sim, la.xy, la.unit, la.weight, a.t.geometry, ga, ba,
                                     lb.xy, lb.unit, lb.weight, b.t.geometry, gb, bb, fp, ip))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--condition", default="sensor")
    ap.add_argument("--min-common", default="[null, 0.3]", help="JSON list; null: the shipped dot product")
    args = ap.parse_args()
    p = dataclasses.replace(matcher.MatchParams(), **json.loads(os.environ.get("OVER", "{}")))
    blobs = load(args.cache, args.condition)
    ready = {}
    for name in sorted(blobs):
        keys = sorted(blobs[name])
        ready[name] = (keys, [Ready(Template.from_bytes(blobs[name][k], params=p)) for k in keys])
    for spec in json.loads(args.min_common):
        res, gen_all, imp_all = {}, [], []
        for name, (keys, ts) in ready.items():
            gen, imp = all_pairs([k[0] for k in keys], ts, lambda a, b: (
                matcher.compare(a.t, b.t, p) if spec is None else compare(a, b, p, spec)))
            r = metrics.rates(gen, imp)
            res[name] = (100 * r["EER"], 100 * r["FMR1000"])
            gen_all += list(gen)
            imp_all += list(imp)
        g, i_ = np.array(gen_all), np.array(imp_all)
        pooled = {str(f): round(v, 2) for f, v in pooled_fnmr(g, i_).items()}
        print(json.dumps({
            "condition": args.condition, "over": json.loads(os.environ.get("OVER", "{}")), "min_common": spec,
            "mean": np.mean(list(res.values()), axis=0).round(3).tolist(), "pooled_fnmr": pooled,
            "genuine": len(g), "impostor": len(i_), "sets": {k: [round(x, 2) for x in v] for k, v in res.items()},
        }), flush=True)


if __name__ == "__main__":
    main()
