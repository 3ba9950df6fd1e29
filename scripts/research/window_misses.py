"""Research (issue 17 part 2, diagnostic): why the sensor misses that share much of the window fail.

Among the genuine pairs `window_overlap.py` aligns on their native templates and that share 80 mm^2
or more inside both windows: the sensor templates' own alignment is checked against the native one
carried into the windows (where the centre of a's window lands, in pixels), and the minutia and
cylinder counts of misses and hits are compared. Thresholds: those window_overlap.py wrote.

    python scripts/research/window_overlap.py --cache C --out OVERLAP.json
    python scripts/research/window_misses.py --cache C --overlap OVERLAP.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets
from fpverify.matcher import kernels, matching
from fpverify.matcher.template import Template

sys.path.insert(0, str(Path(__file__).parent))
from window_overlap import both_conditions, shared_area, transform  # noqa: E402


def into_windows(tr_native, wa: tuple[int, int], wb: tuple[int, int]) -> tuple[float, float, float, float]:
    """The native alignment as a transform between the two sensor frames (y up; a sensor frame is
    the native 500-dpi frame shifted by its window's (top, left))."""
    c, s, tx, ty = tr_native
    (top_a, left_a), (top_b, left_b) = wa, wb
    return c, s, tx + left_a * c + top_a * s - left_b, ty + left_a * s - top_a * c + top_b


def moved(tr, x, y):
    c, s, tx, ty = tr
    return x * c - y * s + tx, x * s + y * c + ty


def landing_error(tr_true, tr_sensor) -> float:
    """Pixels between where the two sensor-frame transforms put the centre of a's window."""
    if tr_sensor is None:
        return float("inf")
    h, w = datasets.SENSOR_SHAPE
    (x1, y1), (x2, y2) = moved(tr_sensor, w / 2.0, -h / 2.0), moved(tr_true, w / 2.0, -h / 2.0)
    return float(np.hypot(x1 - x2, y1 - y2))


def true_candidates(ta: Template, tb: Template, tr_true) -> tuple[int, int]:
    """(how many of the relaxed candidates pair minutiae that the true alignment puts within
    pair_tol_d of each other; how many candidates there are)."""
    fp, ip = matching._packed(ta.params)
    la, lb = ta.local, tb.local
    if la.count < 2 or lb.count < 2:
        return 0, 0
    ia, ib, _ = kernels.top_pairs(la.desc @ tb.desc_t, fp[0], la.unit, lb.unit, int(ip[0]))
    qx, qy = moved(tr_true, la.xy[ia, 0], la.xy[ia, 1])
    d = np.hypot(qx - lb.xy[ib, 0], qy - lb.xy[ib, 1])
    return int((d <= fp[4]).sum()), int(ia.shape[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--overlap", type=Path, required=True)
    ap.add_argument("--min-area", type=float, default=80.0, help="mm^2 shared inside both windows")
    args = ap.parse_args()
    ov = json.loads(args.overlap.read_text())
    t_nat, t_sen = ov["threshold_native_1e-3"], ov["threshold_sensor_1e-3"]
    rows = []
    for _, win, tn, ts in both_conditions(args.cache):
        for a, b in itertools.combinations(sorted(tn), 2):
            if a[0] != b[0] or matcher.compare(tn[a], tn[b]) < t_nat:
                continue
            trn = transform(tn[a], tn[b])
            if trn is None or shared_area(tn[a], win[a], tn[b], win[b], trn) < args.min_area:
                continue
            true = into_windows(trn, win[a], win[b])
            right, candidates = true_candidates(ts[a], ts[b], true)
            rows.append({
                "miss": matcher.compare(ts[a], ts[b]) < t_sen,
                "right_candidates": right, "candidates": candidates,
                "error_px": landing_error(true, transform(ts[a], ts[b])),
                "cylinders_sensor": min(ts[a].local.count, ts[b].local.count),
                "cylinders_native": min(tn[a].local.count, tn[b].local.count),
            })
    for label, miss in (("misses", True), ("hits", False)):
        sel = [r for r in rows if r["miss"] == miss]
        err = np.array([r["error_px"] for r in sel])
        wrong = [r for r in sel if r["error_px"] > 20]
        print(json.dumps({
            "median_right_candidates": float(np.median([r["right_candidates"] for r in sel])),
            "right_candidates_of_the_misaligned": sorted(r["right_candidates"] for r in wrong),
            label: len(sel), "misaligned_over_20px": int((err > 20).sum()), "median_error_px": float(np.median(err)),
            "median_cylinders_sensor": float(np.median([r["cylinders_sensor"] for r in sel])),
            "median_cylinders_native": float(np.median([r["cylinders_native"] for r in sel])),
        }))


if __name__ == "__main__":
    main()
