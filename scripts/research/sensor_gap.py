"""Where the sensor condition loses accuracy: the 256x288 window or the 4-bit pixels (issue 17 part 2).

Runs `bench accuracy` on all 12 FVC sets in four conditions with the shipped extractor: native,
native at 4 bits a pixel, the sensor's window at 8 bits, and the sensor condition (window and 4 bits).
Each condition gets its own template cache (the bench's cache key knows only native / sensor).

    .venv/bin/python scripts/research/sensor_gap.py --out DIR [--cache C] [--only window8,...]

Result of 2026-12-07 (docs/matcher.md, lever table): the window is the whole gap.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fpverify.bench import accuracy, datasets

VARIANTS = ("native", "bits4", "window8", "sensor")


_LOAD_CONDITION = datasets.load_condition


def _load(variant: str):
    """A load_condition for `variant` (bench.accuracy reads sets through datasets.load_condition);
    native and sensor are the bench's own."""

    def load(root: Path, name: str, condition: str):
        if variant in ("native", "sensor"):
            return _LOAD_CONDITION(root, name, variant)
        images, dpi = datasets.load_set(root, name), datasets.dpi_of(name)
        if variant == "bits4":
            return {k: ((v >> 4) * 17).astype(np.uint8) for k, v in images.items()}, dpi
        return {k: datasets.sensor_window(v, dpi, bits=8)[0] for k, v in images.items()}, 500  # window8

    return load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="template caches go in C/<variant>")
    ap.add_argument("--only", default=",".join(VARIANTS))
    args = ap.parse_args()
    root = datasets.default_root()
    rows = {}
    for variant in args.only.split(","):
        datasets.load_condition = _load(variant)  # research only: the bench reads through this name
        cache = args.cache / variant if args.cache else None
        res = accuracy.run(root, list(datasets.FVC_SETS), "native", args.out / variant, cache=cache)
        sets = res["sets"]
        y2002 = [s for s in sets if s.startswith("fvc2002")]
        rows[variant] = {
            "mean_EER": res["mean"]["allpairs_EER"], "mean_FMR1000": res["mean"]["allpairs_FMR1000"],
            "fvc2002_EER": float(np.mean([sets[s]["allpairs"]["EER"] for s in y2002])),
        }
        print(variant, {k: round(100 * v, 2) for k, v in rows[variant].items()})
    (args.out / "gap.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
