"""Speed benchmark on one core: extraction ms, 1:1 compare µs, 1:N comparisons/s (numpy, onnxruntime).

Run through `fpverify bench speed`, which starts this module in a fresh process with the BLAS and
OpenMP pools limited to one thread (they are sized when numpy loads); onnxruntime gets
intra_op_num_threads=1. The 1:N gallery is built from the extracted templates by random rigid
moves, jitter and dropped minutiae (so it is not 10,000 extractions); each gallery entry still
gets its own cylinders.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _variant(rng: np.random.Generator, t, params):
    from fpverify.matcher.template import Template

    m = t.minutiae.astype(np.float64)
    h, w = t.shape
    a = rng.uniform(-0.5, 0.5)
    c, s = np.cos(a), np.sin(a)
    x, y = m[:, 0] - w / 2, m[:, 1] - h / 2
    tx, ty = rng.uniform(-20, 20, 2)
    out = m.copy()
    out[:, 0] = c * x + s * y + w / 2 + tx + rng.normal(0, 1.5, len(m))
    out[:, 1] = -s * x + c * y + h / 2 + ty + rng.normal(0, 1.5, len(m))
    out[:, 2] = (m[:, 2] + a) % (2 * np.pi)
    keep = (rng.random(len(m)) > 0.15) & (out[:, 0] >= 0) & (out[:, 0] < w) & (out[:, 1] >= 0) & (out[:, 1] < h)
    return Template(out[keep], t.shape, params=params)


def run(root: Path, out: Path, gallery_size: int, n_probes: int, images_per_set: int) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fpverify import matcher
    from fpverify.bench import datasets
    from fpverify.matcher.detectors import FusedDetector
    from fpverify.matcher.learned import float_model
    from fpverify.matcher.params import ExtractionParams

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)
    sets = datasets.available_sets(root)
    if not sets:
        raise FileNotFoundError(datasets.missing(root))
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*cols) as progress:
        # 1. Extraction.
        templates, by_set, extract_ms, prepare_ms = [], [], [], []
        task = progress.add_task("extract", total=len(sets) * images_per_set)
        for name in sets:
            imgs = list(datasets.load_set(root, name).items())
            # spread over fingers: impressions 1 and 2 of as many fingers as needed
            imgs = sorted(imgs, key=lambda kv: (kv[0][1], kv[0][0]))[:images_per_set]
            mine = []
            for _, img in imgs:
                t0 = time.perf_counter()
                try:
                    t = matcher.extract(img, dpi=datasets.dpi_of(name))
                except ValueError:
                    t = None
                extract_ms.append((time.perf_counter() - t0) * 1e3)
                if t is not None:
                    # What a verification pays for a stored template: parse + descriptors.
                    t0 = time.perf_counter()
                    t = matcher.Template.from_bytes(t.to_bytes())
                    _ = t.geometry, t.desc_t
                    prepare_ms.append((time.perf_counter() - t0) * 1e3)
                    mine.append(t)
                progress.advance(task)
            templates += mine
            by_set.append(mine)

        # 1b. Extraction of the same images as a station's sensor sends them (256x288, 4 bits a pixel),
        # alternating with the baseline: one look of the float network (the extractor before 2026-12-07).
        sensor_ms, single_ms, sensor_by_set = [], [], []
        baseline = ExtractionParams(detector=FusedDetector(model=float_model(), flips=False))
        task = progress.add_task("extract (sensor images)", total=len(sets) * images_per_set)
        for name in sets:
            imgs = sorted(datasets.load_set(root, name).items(), key=lambda kv: (kv[0][1], kv[0][0]))[:images_per_set]
            mine = []
            for _, img in imgs:
                img = datasets.to_sensor(img, datasets.dpi_of(name))
                for params, times in ((None, sensor_ms), (baseline, single_ms)):
                    t0 = time.perf_counter()
                    try:
                        t = matcher.extract(img, extraction=params)
                    except ValueError:
                        t = None
                    times.append((time.perf_counter() - t0) * 1e3)
                    if params is None and t is not None:
                        _ = t.geometry, t.desc_t
                        mine.append(t)
                progress.advance(task)
            sensor_by_set.append(mine)

        # 2. 1:1 compare, all pairs within each set.
        compare_us = []
        pairs = [(a, b) for ts in by_set for i, a in enumerate(ts) for b in ts[i + 1 :]]
        task = progress.add_task("1:1 compare", total=len(pairs))
        for a, b in pairs:
            t0 = time.perf_counter_ns()
            matcher.compare(a, b)
            compare_us.append((time.perf_counter_ns() - t0) / 1e3)
            progress.advance(task)
        compare_sensor_us = []  # the station's case: templates of sensor images
        for ts in sensor_by_set:
            for i, a in enumerate(ts):
                for b in ts[i + 1 :]:
                    t0 = time.perf_counter_ns()
                    matcher.compare(a, b)
                    compare_sensor_us.append((time.perf_counter_ns() - t0) / 1e3)

        # 3. Gallery of rigidly moved variants.
        gallery = matcher.Gallery(threads=1)
        task = progress.add_task("build gallery", total=gallery_size)
        for i in range(gallery_size):
            v = _variant(rng, templates[i % len(templates)], None)
            gallery.add(i, v)
            progress.advance(task)
        gallery.packed()

        # 4. 1:N first stage, numpy and onnxruntime; full search with re-ranking; 1:1 loop baseline.
        probes = [templates[int(i)] for i in rng.choice(len(templates), n_probes, replace=False)]
        timing: dict[str, list[float]] = {"numpy": [], "onnx": [], "search": [], "loop": []}
        task = progress.add_task("1:N search", total=n_probes * 3)
        for p in probes:
            for backend in ("numpy", "onnx"):
                gallery.first_stage(p, backend=backend)  # warm
                t0 = time.perf_counter()
                gallery.first_stage(p, backend=backend)
                timing[backend].append(time.perf_counter() - t0)
                progress.advance(task)
            t0 = time.perf_counter()
            matcher.search(p, gallery, top_k=10)
            timing["search"].append(time.perf_counter() - t0)
            progress.advance(task)
        loop_n = min(500, gallery_size)
        for p in probes[:4]:
            t0 = time.perf_counter()
            for i in range(loop_n):
                matcher.compare(p, gallery.template(i))
            timing["loop"].append((time.perf_counter() - t0) / loop_n * gallery_size)

    med = {k: float(np.median(v)) for k, v in timing.items()}
    results = {
        "extract_ms_median": float(np.median(extract_ms)),
        "extract_sensor_ms_median": float(np.median(sensor_ms)),
        "extract_sensor_one_look_float_ms_median": float(np.median(single_ms)),
        "compare_us_median": float(np.median(compare_us)),
        "compare_sensor_us_median": float(np.median(compare_sensor_us)),
        "search_per_s": {"numpy": gallery_size / med["numpy"], "onnx": gallery_size / med["onnx"]},
        "gallery_size": gallery_size,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    loop_rate = gallery_size / med["loop"]
    report = f"""# Matcher speed (one core)

Images: {len(extract_ms)} ({images_per_set} from each of {len(sets)} FVC sets); gallery: {gallery_size}
templates built from them by random rigid moves, 1.5 px jitter and 15 % dropped minutiae.
BLAS/OpenMP threads = 1 (environment), onnxruntime intra_op_num_threads = 1.

| measure | median |
|---|---|
| extraction (image -> template) | {results['extract_ms_median']:.1f} ms |
| extraction of the same images as the sensor sends them (256x288, 4 bits) | {results['extract_sensor_ms_median']:.1f} ms (x{results['extract_sensor_ms_median'] / results['extract_ms_median']:.2f}) |
| baseline, same images, alternating: one look of the float network (before 2026-12-07) | {results['extract_sensor_one_look_float_ms_median']:.1f} ms (flips and int8: x{results['extract_sensor_ms_median'] / results['extract_sensor_one_look_float_ms_median']:.2f}) |
| stored template -> ready to compare (parse + cylinders) | {float(np.median(prepare_ms)):.2f} ms |
| 1:1 compare ({len(compare_us)} pairs, cylinders ready) | {results['compare_us_median']:.0f} µs |
| 1:1 compare of sensor-image templates ({len(compare_sensor_us)} pairs) | {results['compare_sensor_us_median']:.0f} µs |
| 1:N first stage, numpy | {results['search_per_s']['numpy']:,.0f} comparisons/s ({1e3 * med['numpy']:.1f} ms a search) |
| 1:N first stage, onnxruntime | {results['search_per_s']['onnx']:,.0f} comparisons/s ({1e3 * med['onnx']:.1f} ms a search) |
| 1:N search incl. re-ranking the best 40 with 1:1 compare (numpy) | {1e3 * med['search']:.1f} ms a search |
| baseline: 1:1 compare in a loop over the gallery | {loop_rate:,.0f} comparisons/s |

1:N first stage vs the 1:1 loop baseline: numpy x{results['search_per_s']['numpy'] / loop_rate:.1f},
onnxruntime x{results['search_per_s']['onnx'] / loop_rate:.1f}.
"""
    (out / "report.md").write_text(report)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gallery-size", type=int, default=10_000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--images-per-set", type=int, default=16)
    a = ap.parse_args()
    run(a.datasets, a.out, a.gallery_size, a.probes, a.images_per_set)


if __name__ == "__main__":
    main()
