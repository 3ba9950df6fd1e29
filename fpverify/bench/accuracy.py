"""FVC accuracy benchmark: per set genuine, FVC-style and all-pairs impostor scores; error rates.

Protocol (per set of 10 fingers x 8 impressions):
  genuine   every two impressions of a finger (i < j): 28 a finger, 280 in all;
  fvc       impostors: first impression of each finger vs the first of every other: 45;
  allpairs  impostors: every impression of A vs every impression of B (A < B): 2880.
An image that fails to extract (ValueError) counts toward FTE and all its comparisons score 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpverify.bench import datasets, metrics
from fpverify.matcher.params import ExtractionParams

# Published reference figures on these sets (all-pairs EER %, issue 2).
REFERENCE_EER = {
    "fvc2000_db1_b": (10.43, 3.93),
    "fvc2000_db2_b": (8.77, 11.53),
    "fvc2000_db3_b": (10.57, 16.85),
    "fvc2000_db4_b": (7.33, 7.13),
    "fvc2002_db1_b": (4.17, 3.03),
    "fvc2002_db2_b": (2.58, 1.51),
    "fvc2002_db3_b": (7.87, 11.43),
    "fvc2002_db4_b": (5.19, 6.06),
    "fvc2004_db1_b": (10.59, 8.93),
    "fvc2004_db2_b": (14.14, 12.50),
    "fvc2004_db3_b": (4.44, 5.35),
    "fvc2004_db4_b": (5.73, 4.38),
}  # (NBIS, SourceAFIS 3.18)
FMR_POINTS = {"fmr_1e-2": 1e-2, "fmr_1e-3": 1e-3, "fmr_1e-4": 1e-4}


@dataclass
class SetScores:
    genuine: list[float] = field(default_factory=list)
    fvc: list[float] = field(default_factory=list)
    allpairs: list[float] = field(default_factory=list)
    extract_ms: list[float] = field(default_factory=list)
    compare_us: list[float] = field(default_factory=list)
    failures: int = 0
    images: int = 0


def _extractor_fingerprint(extraction: ExtractionParams) -> str:
    """Hash of the extraction code, parameters and model: a cache key that changes with them."""
    from fpverify import matcher
    root = Path(matcher.__file__).parent
    h = hashlib.sha256()
    # files that do not change minutiae (comparison, decision thresholds, 1:N search, the package's
    # re-exports, synthetic fingers)
    mine = {"matching.py", "kernels.py", "gallery.py", "descriptors.py", "iso19794.py", "params.py",
            "decision.py", "__init__.py", "codes.py", "index.py"}
    h.update(repr(extraction).encode())  # params.py also holds MatchParams: hash values only
    for p in sorted([*root.rglob("*.py"), *root.rglob("*.onnx")]):
        if p.name not in mine and "synth" not in p.relative_to(root).parts:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    model = getattr(extraction.detector, "model", "")
    if model:
        h.update(Path(model).read_bytes())
    return h.hexdigest()[:16]


def extract_all(
    images: dict[tuple[int, int], np.ndarray],
    dpi: int,
    cache: Path | None,
    tag: str,
    advance: Callable[[], None],
    extraction: ExtractionParams | None = None,
) -> tuple[dict, list[float], int]:
    """Templates (None on failure), extraction times in ms, failure count."""
    from fpverify import matcher
    from fpverify.matcher.template import Template

    extraction = extraction or ExtractionParams()

    cached: dict = {}
    cache_file = None
    if cache is not None:
        cache_file = cache / f"{tag}-{_extractor_fingerprint(extraction)}.json"
        if cache_file.exists():
            cached = json.loads(cache_file.read_text())
    templates, times, failures = {}, [], 0
    for key, img in images.items():
        k = f"{key[0]}_{key[1]}"
        if k in cached:
            entry = cached[k]
            templates[key] = Template.from_bytes(bytes.fromhex(entry["t"])) if entry["t"] else None
            times.append(entry["ms"])
        else:
            t0 = time.perf_counter()
            try:
                t = matcher.extract(img, dpi=dpi, extraction=extraction)
            except ValueError:
                t = None
            ms = (time.perf_counter() - t0) * 1e3
            templates[key] = t
            times.append(ms)
            cached[k] = {"t": t.to_bytes().hex() if t is not None else "", "ms": ms}
        failures += templates[key] is None
        advance()
    if cache_file is not None:
        cache.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cached))
    return templates, times, failures


def score_set(templates: dict, advance: Callable[[int], None]) -> SetScores:
    from fpverify import matcher
    s = SetScores(images=len(templates))
    s.failures = sum(t is None for t in templates.values())
    keys = list(templates)
    for t in templates.values():  # descriptors are built once per template, not timed per compare
        if t is not None:
            _ = t.geometry, t.desc_t
    for a in range(len(keys)):
        ka = keys[a]
        row = 0
        for b in range(a + 1, len(keys)):
            kb = keys[b]
            ta, tb = templates[ka], templates[kb]
            if ta is None or tb is None:
                score = 0.0
            else:
                t0 = time.perf_counter_ns()
                score = matcher.compare(ta, tb)
                s.compare_us.append((time.perf_counter_ns() - t0) / 1e3)
            if ka[0] == kb[0]:
                s.genuine.append(score)
            else:
                s.allpairs.append(score)
                if ka[1] == 1 and kb[1] == 1:
                    s.fvc.append(score)
            row += 1
        advance(row)
    return s


def summarise(name: str, s: SetScores) -> dict:
    return {
        "fvc": metrics.rates(s.genuine, s.fvc),
        "allpairs": metrics.rates(s.genuine, s.allpairs),
        "extract_ms_median": float(np.median(s.extract_ms)),
        "compare_us_median": float(np.median(s.compare_us)) if s.compare_us else 0.0,
        "FTE": s.failures / max(s.images, 1),
    }


def run(
    root: Path,
    sets: list[str],
    condition: str,
    out: Path,
    cache: Path | None = None,
    extraction: ExtractionParams | None = None,
    by_year: dict[str, ExtractionParams] | None = None,
) -> dict:
    """`by_year` extracts each listed FVC year's sets with its own parameters (a network trained without
    that year: the held-out protocol in one run); the other sets use `extraction`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if condition not in ("native", "sensor"):
        raise ValueError("condition must be native or sensor")
    extraction = extraction or ExtractionParams()
    by_year = by_year or {}
    results: dict = {"extractor": describe_extractor(extraction), "sets": {}}
    if by_year:
        results["extractor_by_year"] = held_out_extractors(by_year, sets)
    out.mkdir(parents=True, exist_ok=True)
    all_scores: dict[str, SetScores] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as progress:
        overall = progress.add_task("sets", total=len(sets))
        for name in sets:
            params = by_year.get(datasets.year_of(name), extraction)
            images, dpi = datasets.load_condition(root, name, condition)
            task = progress.add_task(f"{name}: extract", total=len(images))
            templates, times, _ = extract_all(
                images, dpi, cache, f"{name}-{condition}", lambda task=task: progress.advance(task), params
            )
            n = len(templates)
            progress.update(task, description=f"{name}: compare", completed=0, total=n * (n - 1) // 2)
            s = score_set(templates, lambda k, task=task: progress.advance(task, k))
            s.extract_ms = times
            all_scores[name] = s
            results["sets"][name] = summarise(name, s)
            ex = results.get("extractor_by_year", {}).get(datasets.year_of(name), results["extractor"])
            results["sets"][name]["seen_in_training"] = name in ex.get("training_sets", [])
            progress.remove_task(task)
            progress.advance(overall)

    per = results["sets"].values()
    results["mean"] = {
        "allpairs_EER": float(np.mean([r["allpairs"]["EER"] for r in per])),
        "allpairs_FMR1000": float(np.mean([r["allpairs"]["FMR1000"] for r in per])),
        "fvc_EER": float(np.mean([r["fvc"]["EER"] for r in per])),
    }
    pooled_imp = np.concatenate([s.allpairs for s in all_scores.values()])
    pooled_gen = np.concatenate([s.genuine for s in all_scores.values()])
    thresholds = {k: metrics.threshold_at_fmr(pooled_imp, f) for k, f in FMR_POINTS.items()}
    threshold_rows = {
        k: {"threshold": t, "FNMR": float(np.mean(pooled_gen < t)), "FMR": float(np.mean(pooled_imp >= t))}
        for k, t in thresholds.items()
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "thresholds.json").write_text(
        json.dumps({"condition": condition, "impostors": len(pooled_imp), "points": threshold_rows}, indent=2)
    )
    (out / "report.md").write_text(report(results, condition, threshold_rows, len(pooled_imp), len(pooled_gen)))
    det_plot(all_scores, out / "det.png")
    return results


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def describe_extractor(extraction: ExtractionParams) -> dict:
    """Detector, model file and the sets its network was trained on (from the model's metadata)."""
    return extraction.detector.describe()


def held_out_extractors(by_year: dict[str, ExtractionParams], sets: list[str]) -> dict[str, dict]:
    """Each year's extractor as reports describe it, once checked: its model must not have seen that
    year's sets (else no figure would be held out), and the run must use a set of that year."""
    described = {y: describe_extractor(p) for y, p in sorted(by_year.items())}
    for year, ex in described.items():
        if not year.isdigit() or len(year) != 4:
            raise ValueError(f"held-out year {year!r} is not an FVC year such as 2000")
        saw = sorted(s for s in ex.get("training_sets", []) if datasets.year_of(s) == year)
        if saw:
            raise ValueError(f"the model given for {year} ({ex.get('model', '?')}) was trained on {', '.join(saw)}: "
                             f"not held out")
        if not any(datasets.year_of(s) == year for s in sets):
            raise ValueError(f"a model is given for {year} but no set of that year is benchmarked")
    return described


def held_out_lines(described: dict[str, dict], what: str) -> list[str]:
    """Report lines naming each held-out year's extractor; `what` follows the year ("sets: ")."""
    return [f"FVC{year} {what}{e.get('detector', '?')}" + (f", model {e['model']}" if "model" in e else "")
            + " (trained without that year)." for year, e in described.items()]


def report(results: dict, condition: str, thresholds: dict, n_imp: int, n_gen: int) -> str:
    lines = [
        f"# Matcher accuracy ({condition} images)",
        "",
        "Rates in %. Genuine: every two impressions of a finger (280 a set). Impostors: FVC-style",
        "(first vs first, 45 a set) and all-pairs (every impression of A vs every impression of B, 2880",
        "a set). An image that fails to extract counts toward FTE and all its comparisons score 0.",
        "NBIS and SourceAFIS columns: all-pairs EER published in issue 2 for the same files.",
        "",
        "| set | FTE | FVC EER | all-pairs EER | FMR100 | FMR1000 | ZeroFMR | NBIS EER | SourceAFIS EER |"
        " extract ms | compare µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["sets"].items():
        nb, sa = REFERENCE_EER.get(name, (float("nan"), float("nan")))
        a = r["allpairs"]
        mark = " †" if r.get("seen_in_training") else ""
        lines.append(
            f"| {name}{mark} | {_pct(r['FTE'])} | {_pct(r['fvc']['EER'])} | {_pct(a['EER'])} | {_pct(a['FMR100'])} | "
            f"{_pct(a['FMR1000'])} | {_pct(a['ZeroFMR'])} | {nb:.2f} | {sa:.2f} | "
            f"{r['extract_ms_median']:.1f} | {r['compare_us_median']:.0f} |"
        )
    refs = [REFERENCE_EER[n] for n in results["sets"] if n in REFERENCE_EER]
    m = results["mean"]
    nb_mean = f"{np.mean([r[0] for r in refs]):.2f}" if refs else "-"
    sa_mean = f"{np.mean([r[1] for r in refs]):.2f}" if refs else "-"
    lines.append(
        f"| **mean** | | {_pct(m['fvc_EER'])} | {_pct(m['allpairs_EER'])} | | {_pct(m['allpairs_FMR1000'])} | | "
        f"{nb_mean} | {sa_mean} | | |"
    )
    lines += [
        "",
        f"## One-comparison thresholds on these scores (pooled over {n_imp} all-pairs impostor and {n_gen} genuine)",
        "",
        "For comparison only: the shipped matcher.THRESHOLDS are fitted for the station's best-of-n decision",
        "by `fpverify bench calibrate` (docs/matcher.md).",
        "",
        "| point | threshold (compare score) | measured FMR % | FNMR % |",
        "|---|---|---|---|",
    ]
    for k, r in thresholds.items():
        lines.append(f"| {k} | {r['threshold']:.4f} | {_pct(r['FMR'])} | {_pct(r['FNMR'])} |")
    ex = results.get("extractor", {})
    lines += ["", f"Minutia detector: {ex.get('detector', '?')}" + (f", model {ex['model']}" if "model" in ex else "") + "."]
    lines += held_out_lines(results.get("extractor_by_year", {}), "sets: ")
    if any(r.get("seen_in_training") for r in results["sets"].values()):
        lines += [
            "† The network's training saw this set's images (with the teacher's minutiae, never identities):",
            "its figure is optimistic. Held-out figures come from a model trained without the set's year",
            "(`fpverify train extractor --hold-out YEAR`, then `--model`).",
        ]
    lines += ["", "DET curves (all-pairs): det.png", ""]
    return "\n".join(lines)


def det_plot(all_scores: dict[str, SetScores], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    for name, s in all_scores.items():
        fmr, fnmr = metrics.det_curve(s.genuine, s.allpairs)
        ax.plot(np.maximum(fmr, 1e-4), np.maximum(fnmr, 1e-4), label=name, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(1e-4, 1)
    ax.set_xlabel("FMR (all-pairs impostors)")
    ax.set_ylabel("FNMR")
    ax.set_title("DET per FVC set")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
