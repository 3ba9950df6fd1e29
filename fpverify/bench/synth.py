"""Variety of synthetic fingers (issue 18): impostor rates at the shipped operating points, synthetic
against the real FVC sets, by the same protocol and in the same condition.

Protocol (the accuracy bench's all-pairs): every impression of finger A against every impression of
finger B (A < B) is an impostor comparison, every two impressions of one finger a genuine one; on the
FVC sets within each set only (a desk's impostor is pressed on the holder's sensor; matcher.THRESHOLDS
are fitted that way). An image that fails to extract scores 0 in all its comparisons.

Conditions: `sensor` (default: the images a station sends and the demo decides on: a synthetic
impression through the simulated sensor's 288 x 256 window at 4 bits a pixel; an FVC image through
`bench.datasets.to_sensor`), or `native` (the images as generated or captured).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

CONDITIONS = ("sensor", "native")


def synthetic_templates(seed: int, fingers: int, impressions: int, condition: str = "sensor",
                        advance: Callable[[], None] = lambda: None) -> tuple[list[list], list[str]]:
    """Templates (None where extraction failed) of `fingers` x `impressions`, and each finger's class.

    Finger i is `generate_finger(seed * 1_000_003 + i)`, as `fpverify synth` numbers them.
    """
    from fpverify import matcher
    from fpverify.edge.sensor.simulator import fit_to_sensor
    from fpverify.matcher import synth as s

    _check(condition)
    temps, kinds = [], []
    for i in range(fingers):
        master = s.generate_finger(seed * 1_000_003 + i)
        kinds.append(master.kind)
        row = []
        for k in range(impressions):
            image = s.impression(master, k, seed)[0]
            if condition == "sensor":
                image = (fit_to_sensor(image) >> 4) * 17  # what the sensor protocol carries: 4 bits
            try:
                row.append(matcher.extract(image))
            except ValueError:
                row.append(None)
        temps.append(row)
        advance()
    return temps, kinds


def all_pairs(temps: list[list]) -> tuple[np.ndarray, np.ndarray]:
    """(impostor, genuine) scores of templates grouped by finger, by the all-pairs protocol."""
    from fpverify import matcher

    def score(a, b) -> float:
        return matcher.compare(a, b) if a is not None and b is not None else 0.0

    imp = [score(a, b) for i in range(len(temps)) for j in range(i + 1, len(temps)) for a in temps[i] for b in temps[j]]
    gen = [score(r[x], r[y]) for r in temps for x in range(len(r)) for y in range(x + 1, len(r))]
    return np.asarray(imp, np.float64), np.asarray(gen, np.float64)


def real_scores(root: Path, condition: str = "sensor", cache: Path | None = None,
                sets: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(impostor, genuine, sets used): the FVC sets' scores by the same protocol, within each set."""
    from fpverify.bench import datasets
    from fpverify.bench.accuracy import extract_all

    _check(condition)
    names = sets or datasets.available_sets(root)
    if not names:
        raise FileNotFoundError(datasets.missing(root))
    imp, gen = [], []
    for name in names:
        images, dpi = datasets.load_condition(root, name, condition)
        templates, _, _ = extract_all(images, dpi, cache, f"{name}-{condition}", lambda: None)
        by_finger: dict[int, list] = {}
        for (finger, _), t in sorted(templates.items()):
            by_finger.setdefault(finger, []).append(t)
        i, g = all_pairs(list(by_finger.values()))
        imp.append(i)
        gen.append(g)
    return np.concatenate(imp), np.concatenate(gen), names


def point_rates(imp: np.ndarray, gen: np.ndarray) -> dict:
    """Per shipped operating point: impostors at or above its threshold (count, rate, 95 % interval),
    whether the sample resolves the point's rate (>= 10 / rate comparisons), genuine below it."""
    from fpverify import matcher
    from fpverify.matcher import decision

    out = {}
    for point, thr in matcher.THRESHOLDS.items():
        k, n = int((imp >= thr).sum()), len(imp)
        lo, hi = interval95(k, n)
        out[point] = {"threshold": thr, "impostors_above": k, "impostor_comparisons": n,
                      "impostor_rate": k / n if n else float("nan"), "low95": lo, "high95": hi,
                      "resolved": n >= 10 / decision.point_rate(point),
                      "genuine_below": float((gen < thr).mean()) if len(gen) else float("nan"),
                      "genuine_comparisons": len(gen)}
    return out


def against_real(synthetic: dict, real: dict) -> dict:
    """Per point: synthetic rate / real rate and whether it is within 2x (None where a side saw no
    impostor above the threshold: the ratio is then not measured)."""
    out = {}
    for point, s in synthetic.items():
        r = real[point]
        ratio = s["impostor_rate"] / r["impostor_rate"] if s["impostors_above"] and r["impostors_above"] else None
        out[point] = {"ratio": ratio, "within_2x": None if ratio is None else bool(0.5 <= ratio <= 2.0),
                      "both_resolved": bool(s["resolved"] and r["resolved"])}
    return out


def interval95(k: int, n: int) -> tuple[float, float]:
    """Two-sided 95 % Clopper-Pearson interval of a rate seen k times in n trials."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta

    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def report(m: dict) -> str:
    """The markdown section of `bench synth` on variety."""
    rows = [f"\n## Impostor rate at the shipped operating points ({m['condition']} condition)\n",
            f"Synthetic: {m['fingers']} fingers x {m['impressions']} impressions (classes {m['classes']}), "
            f"{m['extraction_failures']} extraction failures; real: {', '.join(m.get('real_sets', [])) or 'not run'}. "
            "All-pairs protocol (A < B), the real sets within each set. Rates from fewer than 10 / rate "
            "comparisons are estimates (marked ~); 95 % Clopper-Pearson intervals in brackets.\n",
            "| point (threshold) | synthetic above / comparisons | synthetic rate | real above / comparisons | real rate "
            "| synthetic / real | within 2x | genuine below: synthetic / real |",
            "|---|---|---|---|---|---|---|---|"]
    real = m.get("real")
    for point, s in m["synthetic"].items():
        r = real[point] if real else None
        v = m["versus_real"][point] if real else None
        ratio = "-" if not v or v["ratio"] is None else f"{v['ratio']:.2f}"
        within = "-" if not v or v["within_2x"] is None else ("yes" if v["within_2x"] else "no")
        r_count = f"{r['impostors_above']:,} / {r['impostor_comparisons']:,}" if r else "-"
        r_gen = f"{100 * r['genuine_below']:.1f} %" if r else "-"
        rows.append(
            f"| {point} ({s['threshold']:.4f}) | {s['impostors_above']:,} / {s['impostor_comparisons']:,} | {_rate(s)} "
            f"| {r_count} | {_rate(r) if r else '-'} | {ratio} | {within} | {100 * s['genuine_below']:.1f} % / {r_gen} |")
    return "\n".join(rows) + "\n"


def _rate(x: dict) -> str:
    mark = "" if x["resolved"] else "~"
    return f"{mark}{x['impostor_rate']:.2e} [{x['low95']:.1e}, {x['high95']:.1e}]"


def _check(condition: str) -> None:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, not {condition!r}")
