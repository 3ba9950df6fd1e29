"""Research (issue 17 part 2, diagnostic): how much finger two presses of one finger share inside
the sensor's window, and how the sensor-condition misses depend on it.

The sensor condition cuts each press to the 256 x 288 window a ZFM/R307 sends (`datasets.sensor_window`).
For every genuine pair this takes the alignment of the two *native* templates (the matcher's own:
relaxed anchors, then the refitted rigid transform), kept only where the native comparison matches
at its FMR 1e-3 threshold (so the alignment is right), and measures the finger area that lies inside
both windows and both finger masks (mask cells of 8 px moved by the transform). Then the
sensor-condition genuine scores of the same pairs are split by that shared area.

    python scripts/research/window_overlap.py --cache C [--out FILE.json]

C: a `bench accuracy --cache` folder holding both conditions' templates (held-out networks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets, metrics
from fpverify.matcher import kernels, matching
from fpverify.matcher.template import Template

sys.path.insert(0, str(Path(__file__).parent))
from match_params_grid import load  # noqa: E402

MM2 = (25.4 / 500.0) ** 2  # mm^2 of one 500-dpi pixel
BINS = (0.0, 20.0, 40.0, 60.0, 80.0, 1e9)  # shared area, mm^2


def transform(ta: Template, tb: Template) -> tuple[float, float, float, float] | None:
    """The matcher's rigid transform (cos, sin, tx, ty; y-up frame) taking ta's minutiae onto tb's."""
    p = ta.params
    fp, ip = matching._packed(p)
    la, lb = ta.local, tb.local
    if la.count < 2 or lb.count < 2:
        return None
    sim = la.desc @ tb.desc_t
    pa, pb, wt, _ = kernels.anchors(sim, la.unit, lb.unit, ta.geometry, tb.geometry, fp, ip)
    if pa.shape[0] == 0:
        return None
    matched, c, s, tx, ty, _, _ = kernels.align(la.xy, la.unit, lb.xy, lb.unit, pa, pb, wt, fp[4], fp[5], int(ip[5]))
    return (c, s, tx, ty) if matched else None


def shared_area(ta: Template, wa: tuple[int, int], tb: Template, wb: tuple[int, int], tr) -> float:
    """mm^2 of a's finger inside a's window that lands on b's finger inside b's window."""
    h, w = datasets.SENSOR_SHAPE
    ga, ba = ta.valid_grid
    gb, bb = tb.valid_grid
    r, q = np.nonzero(ga)
    y, x = (r + 0.5) * ba, (q + 0.5) * ba  # cell centres, image coordinates
    ina = (y >= wa[0]) & (y < wa[0] + h) & (x >= wa[1]) & (x < wa[1] + w)
    x, y = x[ina], -y[ina]  # y up, as the matcher's frame
    c, s, tx, ty = tr
    xb, yb = x * c - y * s + tx, -(x * s + y * c + ty)  # back to image rows
    i, j = np.floor(yb / bb).astype(int), np.floor(xb / bb).astype(int)
    ok = (i >= 0) & (i < gb.shape[0]) & (j >= 0) & (j < gb.shape[1])
    on = np.zeros(ok.shape, bool)
    on[ok] = gb[i[ok], j[ok]]
    on &= (yb >= wb[0]) & (yb < wb[0] + h) & (xb >= wb[1]) & (xb < wb[1] + w)
    return float(on.sum()) * ba * ba * MM2


def both_conditions(cache: Path):
    """(set, sensor windows (top, left), native templates, sensor templates) of each set in the cache,
    templates keyed (finger, impression) where both conditions have one."""
    root = datasets.default_root()
    native, sensor = load(cache, "native"), load(cache, "sensor")
    for name in sorted(native):
        dpi = datasets.dpi_of(name)
        windows = {k: datasets.sensor_window(img, dpi)[1:] for k, img in datasets.load_set(root, name).items()}
        keys = sorted(set(native[name]) & set(sensor[name]))
        yield (name, windows, {k: Template.from_bytes(native[name][k]) for k in keys},
               {k: Template.from_bytes(sensor[name][k]) for k in keys})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows, imp_sensor, imp_native = [], [], []
    names = []
    for name, windows, tn, ts in both_conditions(args.cache):
        names.append(name)
        for a, b in itertools.combinations(sorted(tn), 2):
            if a[0] != b[0]:
                imp_sensor.append(matcher.compare(ts[a], ts[b]))
                imp_native.append(matcher.compare(tn[a], tn[b]))
                continue
            tr = transform(tn[a], tn[b])
            area = shared_area(tn[a], windows[a], tn[b], windows[b], tr) if tr else float("nan")
            rows.append((name, matcher.compare(tn[a], tn[b]), matcher.compare(ts[a], ts[b]), area))
        print(name, len(rows), flush=True)
    nat = np.array([r[1] for r in rows])
    sen = np.array([r[2] for r in rows])
    area = np.array([r[3] for r in rows])
    t_nat = metrics.threshold_at_fmr(np.array(imp_native), 1e-3)
    t_sen = metrics.threshold_at_fmr(np.array(imp_sensor), 1e-3)
    aligned = (nat >= t_nat) & np.isfinite(area)
    out = {"genuine": len(rows), "impostor": len(imp_sensor), "aligned": int(aligned.sum()),
           "threshold_native_1e-3": t_nat, "threshold_sensor_1e-3": t_sen,
           "sensor_fnmr_1e-3_all": float(np.mean(sen < t_sen)),
           "sensor_fnmr_1e-3_aligned": float(np.mean(sen[aligned] < t_sen)), "bins": []}
    for lo, hi in itertools.pairwise(BINS):
        m = aligned & (area >= lo) & (area < hi)
        out["bins"].append({"mm2": [lo, hi], "pairs": int(m.sum()), "misses": int((sen[m] < t_sen).sum())})
    of_set = np.array([r[0] for r in rows])
    out["by_set"] = {
        s: {"aligned": int((aligned & (of_set == s)).sum()), "median_mm2": float(np.nanmedian(area[aligned & (of_set == s)]))}
        for s in names
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
