"""Research (issue 17 part 2, diagnostic): how often a minutia of one press is found again in the
other presses of the same finger, for LEADER's minutiae (the teacher) and for ours.

For every press a of a finger and every other press b of it that the matcher matches at
`matcher.THRESHOLDS["fmr_1e-3"]` (so the alignment is right), a's minutiae are moved by the matcher's
own rigid transform (`window_overlap.transform`, computed on the same extractor's templates). A moved
minutia is *checkable* in b when it lands on b's finger mask, and *found* when b has a minutia within
12 px and 40 degrees of it. A minutia's repeat rate is found / checkable over the presses where it is
checkable (at least two). A label that is never found again is a doubtful label; a detector whose
minutiae repeat less than the teacher's adds doubtful minutiae.

    python scripts/research/minutia_repeatability.py --cache C [--sets a,b] [--model M.onnx]

C: the teacher cache (`fpverify train extractor --cache C` / `bench teacher --cache C`), LEADER's
minutiae of each set. Our minutiae come from the shipped network, or `--model` (a held-out one).
Masks are our segmentation's for both extractors (as `bench teacher` does).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from fpverify import matcher
from fpverify.bench import datasets, teacher
from fpverify.matcher.detectors import FusedDetector
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.template import Template

sys.path.insert(0, str(Path(__file__).parent))
from window_overlap import transform  # noqa: E402

RADIUS_PX = 12.0
ANGLE = math.radians(40.0)


def templates(root: Path, name: str, cache: Path, model: str) -> tuple[dict, dict]:
    """(ours, LEADER's) templates by (finger, impression); LEADER's carry our mask and shape."""
    images, dpi = datasets.load_set(root, name), datasets.dpi_of(name)
    labels, _ = teacher.teacher_all(images, dpi, teacher.cache_file(cache, name), lambda: None)
    params = ExtractionParams(detector=FusedDetector(model=model)) if model else None
    ours, lead = {}, {}
    for key, img in images.items():
        try:
            t = matcher.extract(img, dpi=dpi, extraction=params)
        except ValueError:
            continue
        ours[key] = t
        lead[key] = Template(labels[key], t.shape, mask=t.mask, mask_block=t.mask_block, dpi=500)
    return ours, lead


def repeat_rates(ts: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Each checkable minutia's repeat rate and quality, and how many minutiae there were in all."""
    gate = matcher.THRESHOLDS["fmr_1e-3"]
    rates, quality, total = [], [], 0
    for key, a in ts.items():
        m = a.minutiae
        total += len(m)
        x0, y0, th = m[:, 0], -m[:, 1], m[:, 2]
        found, check = np.zeros(len(m)), np.zeros(len(m))
        for other, b in ts.items():
            if other[0] != key[0] or other == key or matcher.compare(a, b) < gate:
                continue
            tr = transform(a, b)
            if tr is None:
                continue
            c, s, tx, ty = tr
            x, y = x0 * c - y0 * s + tx, x0 * s + y0 * c + ty
            grid, blk = b.valid_grid
            i, j = np.floor(-y / blk).astype(int), np.floor(x / blk).astype(int)
            ok = (i >= 0) & (i < grid.shape[0]) & (j >= 0) & (j < grid.shape[1])
            on = np.zeros(len(m), bool)
            on[ok] = grid[i[ok], j[ok]]
            bm = b.minutiae
            d = np.hypot(x[:, None] - bm[None, :, 0], y[:, None] + bm[None, :, 1])
            da = np.abs((th[:, None] + math.atan2(s, c) - bm[None, :, 2] + np.pi) % (2 * np.pi) - np.pi)
            check += on
            found += on & ((d < RADIUS_PX) & (da < ANGLE)).any(axis=1)
        keep = check >= 2
        rates += list(found[keep] / check[keep])
        quality += list(m[keep, 3])
    return np.asarray(rates), np.asarray(quality), total


def summary(rates: np.ndarray, quality: np.ndarray, total: int, n_images: int) -> dict:
    qs = np.quantile(quality, [0.25, 0.5, 0.75]) if len(quality) else np.zeros(3)
    bins = np.digitize(quality, qs)
    return {
        "minutiae_per_press": total / max(n_images, 1),
        "checkable": len(rates),
        "never_found_pct": 100 * float(np.mean(rates == 0)) if len(rates) else 0.0,
        "median_repeat": float(np.median(rates)) if len(rates) else 0.0,
        "mean_repeat": float(np.mean(rates)) if len(rates) else 0.0,
        "mean_repeat_by_quality_quartile": [float(np.mean(rates[bins == k])) if np.any(bins == k) else 0.0
                                            for k in range(4)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=datasets.default_root())
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--sets", default="")
    ap.add_argument("--model", default="", help="ONNX minutia model for ours (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here too")
    args = ap.parse_args()
    names = [s for s in args.sets.split(",") if s] or datasets.available_sets(args.datasets)
    res = {}
    for name in names:
        ours, lead = templates(args.datasets, name, args.cache, args.model)
        res[name] = {who: summary(*repeat_rates(ts), len(ts)) for who, ts in (("leader", lead), ("ours", ours))}
        r = res[name]
        print(f"{name}: minutiae a press LEADER {r['leader']['minutiae_per_press']:.0f} / ours "
              f"{r['ours']['minutiae_per_press']:.0f}; never found again {r['leader']['never_found_pct']:.1f} / "
              f"{r['ours']['never_found_pct']:.1f} %; mean repeat {r['leader']['mean_repeat']:.2f} / "
              f"{r['ours']['mean_repeat']:.2f}; ours by quality quartile "
              f"{' '.join(f'{v:.2f}' for v in r['ours']['mean_repeat_by_quality_quartile'])}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
