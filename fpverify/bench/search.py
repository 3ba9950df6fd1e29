"""1:N search benchmark: compact-code first stage (matcher.search) against the float one (matcher.Gallery).

Run through `fpverify bench search`, which starts this module in a fresh process with the BLAS and
OpenMP pools limited to one thread (first-stage rates are per core, timed in thread CPU time so other
jobs on the machine do not count; the search itself is wall time on `--threads` threads).

Two galleries, kept apart:
- recall, on real templates only: the 12 FVC sets pooled (960 templates, 120 fingers) and a synthetic
  set (matcher.synth). A (probe, mate) pair stays on the shortlist of a gallery of N when the number
  of impostors expected above the mate, (impostors above it here) x N / (impostors here), is below the
  shortlist size. "Enrollment" trials mirror the duplicate check: PROBES presses searched against
  GALLERY other impressions of the finger; found when one gallery impression is on a probe's shortlist
  and `compare` of it with a probe reaches the threshold. Recall counts the trials an exhaustive
  `compare` of all their pairs would flag.
- speed and memory, on N rows: the codes of the real templates and of perturbed copies of them
  (random rigid moves, jitter, dropped minutiae), repeated with 4 % of their bits flipped up to N.
  Fine for timing and bytes, not for recall (copies of a finger are its mates).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fpverify.edge.presses import ENROLL_PRESSES

PROBES = ENROLL_PRESSES  # a new enrollment's presses, each searched (the registry's duplicate check)
# the finger's impressions already in the gallery: what FVC's 8 leave after the probes (fewer than a
# holder's 5, so recall is if anything understated)
GALLERY = 3

# Same fingers in two sets (impostor pairs that are not): FVC2000 DB1 and DB2 share their volunteers
# (finger k of one is finger k of the other: 572 of their 6,400 cross pairs score above the 1e-4
# threshold), and fvc2002_db3_b 108 is fvc2004_db3_b 102 (38 of its 64 cross pairs do).
SAME_FINGER = {("fvc2000_db2_b", f): ("fvc2000_db1_b", f) for f in range(101, 111)}
SAME_FINGER[("fvc2004_db3_b", 102)] = ("fvc2002_db3_b", 108)


def load_fvc(root: Path, cache: Path | None) -> tuple[list, list]:
    """Templates of every FVC set present and their identity (set, finger), same fingers merged."""
    from fpverify.bench import accuracy, datasets

    temps, ident = [], []
    for name in datasets.available_sets(root):
        got, _, _ = accuracy.extract_all(datasets.load_set(root, name), datasets.dpi_of(name), cache,
                                         f"{name}-native", lambda: None)  # fmt: skip
        for (finger, imp), t in got.items():
            if t is not None:
                temps.append(t)
                ident.append((SAME_FINGER.get((name, finger), (name, finger)), imp))
    if not temps:
        raise FileNotFoundError(f"no FVC set under {root}")
    return temps, ident


def make_synth(fingers: int, impressions: int = 8) -> tuple[list, list]:
    from fpverify import matcher
    from fpverify.matcher import synth

    temps, ident = [], []
    for f in range(fingers):
        master = synth.generate_finger(5000 + f)
        for k in range(impressions):
            try:
                temps.append(matcher.extract(synth.impression(master, k, seed=0)[0]))
                ident.append((("synth", f), k))
            except ValueError:
                pass
    return temps, ident


def score_matrix(temps: list, kind: str) -> np.ndarray:
    """(n, n) first-stage scores: 'codes' (compact) or 'float' (matcher.Gallery, numpy)."""
    from fpverify import matcher
    from fpverify.matcher import codes, index

    n = len(temps)
    s = np.zeros((n, n), np.float32)
    if kind == "codes":
        g = index.CodeGallery(capacity=n)
        for i, t in enumerate(temps):
            g.add(i, t)
        for i, t in enumerate(temps):
            s[i] = g.first_stage(codes.probe_code(t))
    else:
        g = matcher.Gallery(enumerate(temps))
        for i, t in enumerate(temps):
            s[i] = g.first_stage(t)
    return s


SHORTLISTS = (25, 50, 100, 200, 400)  # recall is also reported at these shortlist sizes


def recall(temps: list, ident: list, s: np.ndarray, n_target: int, shortlist: int, thr: float) -> dict:
    """Pair and enrollment recall of first-stage scores `s`, as if the gallery held `n_target`."""
    from fpverify import matcher

    fid = np.array([hash(f) for f, _ in ident])
    n = len(temps)
    same = fid[:, None] == fid[None, :]
    # Impostors expected above mate g on p's list in a gallery of n_target: "direct" from p's own
    # impostors (resolution n_target / their number), "pooled" from every probe's impostor scores
    # standardised by that probe's mean and spread (resolution n_target / all impostor scores).
    direct, pooled = np.full((n, n), np.inf), np.full((n, n), np.inf)
    mu = np.array([s[p][~same[p]].mean() for p in range(n)])
    sd = np.array([max(1e-6, s[p][~same[p]].std()) for p in range(n)])
    z_all = np.sort(((s - mu[:, None]) / sd[:, None])[~same])
    cmp: dict[tuple[int, int], float] = {}
    for p in range(n):
        imp = np.sort(s[p][~same[p]])
        for g in np.flatnonzero(same[p]):
            if g == p:
                continue
            hi, lo = np.searchsorted(imp, s[p, g], side="right"), np.searchsorted(imp, s[p, g], side="left")
            direct[p, g] = (len(imp) - hi + 0.5 * (hi - lo)) * n_target / max(1, len(imp))
            z = (s[p, g] - mu[p]) / sd[p]
            pooled[p, g] = (len(z_all) - np.searchsorted(z_all, z, side="right")) * n_target / len(z_all)
            if (g, p) not in cmp:
                cmp[(p, g)] = matcher.compare(temps[p], temps[g])
    score = lambda a, b: cmp[(a, b)] if (a, b) in cmp else cmp[(b, a)]  # noqa: E731
    pairs = [(p, g) for p in range(n) for g in np.flatnonzero(same[p]) if g != p]
    det = [(p, g) for p, g in pairs if score(p, g) >= thr]
    # enrollment trials: by finger, GALLERY impressions in the gallery, the next PROBES searched, every rotation
    by_f: dict = {}
    for i, (f, _) in enumerate(ident):
        by_f.setdefault(f, []).append(i)
    trials = []  # (probes, enrolled impressions whose best compare with the probes reaches thr)
    for rows in by_f.values():
        k = len(rows)
        if k < GALLERY + PROBES:
            continue
        for r in range(k):
            enr = [rows[(r + j) % k] for j in range(GALLERY)]
            new = [rows[(r + GALLERY + j) % k] for j in range(PROBES)]
            trials.append((new, [g for g in enr if max(score(q, g) for q in new) >= thr]))
    flagged = [(new, hits) for new, hits in trials if hits]

    def at(size: int, expected: np.ndarray) -> dict:
        kept = expected < size
        found = sum(any(kept[p, g] for g in hits for p in new) for new, hits in flagged)
        return {"pair_recall": float(np.mean([kept[p, g] for p, g in pairs])),
                "detectable_pair_recall": float(np.mean([kept[p, g] for p, g in det])),
                "enrollment_recall": found / len(flagged) if flagged else float("nan")}  # fmt: skip

    return {
        "pairs": len(pairs), "detectable_pairs": len(det), "enrollment_trials": len(trials),
        "enrollments_flagged_exhaustive": len(flagged), "impostor_comparisons": int((~same).sum()),
        "gallery_size_emulated": n_target, "shortlist": shortlist, **at(shortlist, direct),
        "pooled": at(shortlist, pooled), "direct_resolution_rows": n_target / max(1, n - 8),
        "by_shortlist": {str(k): at(k, direct) for k in SHORTLISTS},
        "pooled_by_shortlist": {str(k): at(k, pooled) for k in SHORTLISTS},
    }  # fmt: skip


def fit_codes(root: Path, sets: list[str], cache: Path | None, out: Path) -> dict:
    """Fit the code projection on the given sets (never the FVC ones it is measured on)."""
    from fpverify.bench import accuracy, datasets
    from fpverify.matcher import codes

    desc = []
    for name in sets:
        got, _, _ = accuracy.extract_all(datasets.load_set(root, name), datasets.dpi_of(name), cache,
                                         f"{name}-native", lambda: None)  # fmt: skip
        desc += [t.local.desc for t in got.values() if t is not None]
    rec = codes.fit(np.concatenate(desc), codes.DEFAULT_CODES.bits, sets)
    out.write_text(json.dumps(rec))
    return {k: v for k, v in rec.items() if k not in ("mean", "axes")}


def run(
    root: Path,
    out: Path,
    gallery_size: int,
    shortlist: int,
    threads: int,
    synth_fingers: int,
    cache: Path | None,
    distinct: int = 4000,
    probes: int = 9,
    point: str = "fmr_1e-4",
    recall_size: int = 0,
) -> dict:
    from fpverify import matcher

    out.mkdir(parents=True, exist_ok=True)  # before the work: an unwritable --out fails at once
    thr_name = point
    n_rec = recall_size or gallery_size  # the gallery the recall is emulated for
    # the registry's threshold for an enrollment of PROBES presses against n_rec templates
    thr = matcher.best_of_n(matcher.THRESHOLDS[thr_name], PROBES * n_rec)
    t0 = time.perf_counter()
    temps, ident = load_fvc(root, cache)
    res: dict = {
        "threshold": thr_name,
        "threshold_score": thr,
        "probes_per_enrollment": PROBES,
        "gallery_size": gallery_size,
        "recall_gallery_size": n_rec,
        "shortlist": shortlist,
    }
    for kind in ("codes", "float"):
        res[f"fvc_{kind}"] = recall(temps, ident, score_matrix(temps, kind), n_rec, shortlist, thr)
    res["fvc_templates"] = len(temps)
    if synth_fingers:
        st, si = make_synth(synth_fingers)
        res["synth_templates"] = len(st)
        for kind in ("codes", "float"):
            res[f"synth_{kind}"] = recall(st, si, score_matrix(st, kind), n_rec, shortlist, thr)
    from fpverify.bench.search_speed import speed

    res["speed"] = speed(temps, gallery_size, shortlist, threads, distinct, probes)
    sp = res["speed"]
    res.update(
        {k: sp[k] for k in ("first_stage_per_s", "bytes_per_template", "search_s_median", "baseline_per_s")}
    )
    _headline(res)
    res["ratio_to_baseline"] = sp["first_stage_per_s"] / sp["baseline_per_s"]
    res["bench_s"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(res, indent=2))
    (out / "report.md").write_text(report(res))
    return res


def _headline(res: dict) -> None:
    """shortlist_recall: FVC enrollment recall at the gallery size, from the pooled impostor scores
    (the direct estimate cannot resolve a shortlist finer than gallery / its impostors)."""
    res["shortlist_recall"] = res["fvc_codes"]["pooled"]["enrollment_recall"]
    res["shortlist_recall_direct"] = res["fvc_codes"]["enrollment_recall"]
    res["synthetic_shortlist_recall"] = res.get("synth_codes", {}).get("pooled", {}).get("enrollment_recall")


def report(r: dict) -> str:
    sp = r["speed"]
    lines = [
        "# 1:N search (fpverify bench search)", "",
        f"Gallery of {r['gallery_size']:,} rows, shortlist {r['shortlist']} a probe, re-ranked by `compare`; "
        f"threshold {r['threshold']} for a decision over {r['probes_per_enrollment']} x "
        f"{r.get('recall_gallery_size', r['gallery_size']):,} comparisons "
        f"(matcher.best_of_n: {r.get('threshold_score', float('nan')):.4f}). Rates per core in thread CPU time; search times are wall time on "
        f"{sp['threads']} threads.", "",
        "## Speed and memory (rows: real codes and perturbed copies; not for recall)", "",
        "| figure | value |", "|---|---|",
        f"| first stage, compact codes | {sp['first_stage_per_s']:,.0f} comparisons/s/core |",
        f"| first stage, float baseline (matcher.Gallery, {sp['baseline_gallery']:,} rows) | "
        f"{sp['baseline_per_s']:,.0f} comparisons/s/core |",
        f"| ratio | {r['ratio_to_baseline']:.1f}x |",
        f"| memory a template (resident, keys included) | {sp['bytes_per_template']:,.0f} B |",
        f"| of which row arrays | {sp['bytes_per_template_arrays']:,.0f} B |",
        f"| search, one probe (median of {sp['probes_timed']}) | {sp['search_s_median']:.3f} s "
        f"(max {sp['search_s_max']:.3f}) |",
        f"| search, one probe, CPU seconds of all threads (median) | {sp.get('search_cpu_s_median', float('nan')):.3f} s |",
        f"| search, one enrollment of {r['probes_per_enrollment']} presses (median of 3) | {sp['enrollment_search_s_median']:.3f} s |",
        f"| rebuild from template bytes | {sp['rebuild_ms_per_template']:.2f} ms a template, "
        f"{sp['rebuild_s_per_million_one_core'] / 60:.0f} min a million on one core |",
        f"| snapshot save / load | {sp['snapshot_save_s']:.2f} s / {sp['snapshot_load_s']:.2f} s "
        f"({sp['snapshot_mb']:,.0f} MB) |", "",
        f"## Shortlist recall (real templates; gallery of {r.get('recall_gallery_size', r['gallery_size']):,} emulated)", "",
        "| gallery | first stage | pairs | pair recall | detectable pairs | their recall | enrollment trials "
        "| flagged exhaustively | enrollment recall | pooled: pair / detectable / enrollment | impostor comparisons |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name in ("fvc", "synth"):
        for kind in ("codes", "float"):
            x = r.get(f"{name}_{kind}")
            if x:
                lines.append(
                    f"| {name} | {kind} | {x['pairs']:,} | {100 * x['pair_recall']:.2f} % | {x['detectable_pairs']:,} "
                    f"| {100 * x['detectable_pair_recall']:.2f} % | {x['enrollment_trials']:,} "
                    f"| {x['enrollments_flagged_exhaustive']:,} | {100 * x['enrollment_recall']:.2f} % "
                    f"| {100 * x['pooled']['pair_recall']:.2f} / {100 * x['pooled']['detectable_pair_recall']:.2f} / "
                    f"{100 * x['pooled']['enrollment_recall']:.2f} % | {x['impostor_comparisons']:,} |"
                )
    lines += [
        "",
        f"By shortlist size (gallery of {r.get('recall_gallery_size', r['gallery_size']):,} emulated from the pooled scores; pair / "
        "detectable pair / enrollment recall, %):",
        "",
        "| gallery | first stage | " + " | ".join(f"{k}" for k in SHORTLISTS) + " |",
        "|---|---|" + "---|" * len(SHORTLISTS),
    ]
    for name in ("fvc", "synth"):
        for kind in ("codes", "float"):
            x = r.get(f"{name}_{kind}")
            if x and "pooled_by_shortlist" in x:
                cells = [x["pooled_by_shortlist"][str(k)] for k in SHORTLISTS]
                lines.append(
                    f"| {name} | {kind} | "
                    + " | ".join(
                        f"{100 * c['pair_recall']:.1f} / {100 * c['detectable_pair_recall']:.1f} / "
                        f"{100 * c['enrollment_recall']:.2f}"
                        for c in cells
                    )
                    + " |"
                )
    lines += [
        "",
        "Pair recall: a probe's mate is on its shortlist. Detectable pairs: mates whose `compare` "
        f"reaches the threshold. Enrollment recall: of the trials ({GALLERY} impressions in the gallery, "
        f"{PROBES} others searched) that an exhaustive `compare` flags, those the two-stage search flags. Direct columns: "
        "impostors above the mate among the probe's own impostors, scaled to the gallery (one impostor "
        "stands for gallery / impostors rows, so a shortlist below that is not resolved). Pooled: the "
        "same, with every probe's impostor scores standardised (its mean and spread) and pooled, "
        "which resolves gallery / all impostor comparisons rows, assuming probes differ in location "
        "and spread only.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gallery-size", type=int, default=100_000)
    ap.add_argument("--shortlist", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--synth-fingers", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--point", default="fmr_1e-4", help="operating point of the duplicate decision")
    ap.add_argument("--recall-gallery-size", type=int, default=0, help="gallery the recall is emulated for")
    ap.add_argument("--fit-codes", action="store_true", help="fit the code projection on --sets instead")
    ap.add_argument("--sets", default="upek_16x8")
    a = ap.parse_args()
    if a.fit_codes:
        print(json.dumps(fit_codes(a.datasets, a.sets.split(","), a.cache, a.out)))
        return
    r = run(a.datasets, a.out, a.gallery_size, a.shortlist, a.threads, a.synth_fingers, a.cache, point=a.point,
            recall_size=a.recall_gallery_size)
    print(json.dumps({k: r[k] for k in ("first_stage_per_s", "bytes_per_template", "search_s_median",
                                        "shortlist_recall", "baseline_per_s")}))  # fmt: skip


def register(bench) -> None:
    """`fpverify bench search` (called from fpverify.matcher_cli.register)."""
    import os
    import subprocess
    import sys

    import typer

    from fpverify.bench.datasets import available_sets, default_root, missing

    @bench.command("search")
    def search_bench(
        datasets: Path = typer.Option(default_root(), help="folder holding the FVC sets"),
        out: Path = typer.Option(Path("bench-out/search"), "--out"),
        gallery_size: int = typer.Option(
            100_000, help="rows in the timed gallery (and the emulated recall gallery)"
        ),
        shortlist: int = typer.Option(
            100, help="first-stage candidates a probe, re-ranked by compare (the registry: 100)"
        ),
        threads: int = typer.Option(2, help="threads of the timed search"),
        synth_fingers: int = typer.Option(
            30, help="synthetic fingers (8 impressions each) for the synthetic recall"
        ),
        cache: Path | None = typer.Option(None, help="template cache folder (outside the repository)"),
        point: str = typer.Option(
            "fmr_1e-4", help="operating point of the duplicate decision (matcher.THRESHOLDS)"
        ),
        recall_gallery_size: int = typer.Option(
            0, help="gallery the recall is emulated for (0: --gallery-size), e.g. 10000000"
        ),
    ) -> None:
        """Compact-code 1:N search against the float one: rate, memory, search time, shortlist recall."""
        from fpverify import matcher

        if point not in matcher.THRESHOLDS:
            typer.echo(f"error: --point must be one of {', '.join(matcher.THRESHOLDS)}", err=True)
            raise typer.Exit(2)
        if gallery_size < 1 or shortlist < 1 or threads < 1 or synth_fingers < 0 or recall_gallery_size < 0:
            typer.echo("error: --gallery-size, --shortlist and --threads must be at least 1", err=True)
            raise typer.Exit(2)
        if not available_sets(datasets):
            typer.echo(f"error: {missing(datasets)}", err=True)
            raise typer.Exit(2)
        out.mkdir(parents=True, exist_ok=True)  # an unwritable --out: one line (fpverify.cli.main), not the child's traceback
        env = dict(os.environ)  # one thread a pool: rates are per core (pools are sized when numpy loads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        cmd = [sys.executable, "-m", "fpverify.bench.search", "--datasets", str(datasets), "--out", str(out),
               "--gallery-size", str(gallery_size), "--shortlist", str(shortlist), "--threads", str(threads),
               "--synth-fingers", str(synth_fingers), "--point", point, "--recall-gallery-size",
               str(recall_gallery_size)] + (["--cache", str(cache)] if cache else [])  # fmt: skip
        rc = subprocess.call(cmd, env=env)
        if rc:
            raise typer.Exit(rc)
        typer.echo(f"results: {out / 'results.json'}, {out / 'report.md'}")


if __name__ == "__main__":
    main()
