"""Fit matcher.THRESHOLDS and TAIL_SCALE and check them leaving one FVC year out (`fpverify bench calibrate`).

Fitted on one-comparison impostor scores within each set (every press of finger A against every
press of finger B of the same set, both orders: 5,760 a set), because at a desk the impostor is
scanned by the same sensor as the card's holder; comparisons across sets score lower (a lighter
tail) and would loosen the thresholds. matcher.decision.fit takes the tail's start from the pooled
sets and its scale from the heaviest set. Checked on the held-out year's desk decisions: a card
holds the first n presses of one finger (n = 1, K) or the first K of two or three fingers (n = 2K,
3K: a holder with a delegate); every later press of another finger of that year is an impostor
decision (best score over the card against matcher.decision.threshold_for(base, scale, n)).

With `--cohort other-years` the same is done on cohort-normalised scores (matcher.decision.Cohort):
each template's scores are normalised by its scores against the presses of other FVC years (the fit:
the two other years; leaving year Y out, a training year's templates by the third year only and Y's
by both others), so neither the fit nor a template's cohort ever holds the held-out year's fingers.
That fits decision.COHORT_THRESHOLDS and COHORT_TAIL_SCALE, with the tail rule that also guards
against a set whose normalised impostors sit higher than the pool's (`decision.fit(shifted=True)`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fpverify.bench import datasets, metrics
from fpverify.bench.accuracy import extract_all, held_out_extractors, held_out_lines
from fpverify.matcher import decision
from fpverify.matcher.params import ExtractionParams

POINTS = ("fmr_1e-2", "fmr_1e-3", "fmr_1e-4")


class Year:
    """The score matrix (probe row, template column) of every press of one FVC year's sets."""

    def __init__(self, templates: dict[str, dict]) -> None:
        from fpverify import matcher

        self.keys = [(name, f, i) for name, t in templates.items() for (f, i) in sorted(t)]
        tmpl = [templates[n][(f, i)] for n, f, i in self.keys]
        self.templates = tmpl
        self.finger = [datasets.identity(n, f) for n, f, _ in self.keys]  # comparable across years
        for t in tmpl:
            if t is not None:
                _ = t.geometry
        m = len(tmpl)
        self.S = np.zeros((m, m))
        for a in range(m):
            for b in range(m):
                if a != b and tmpl[a] is not None and tmpl[b] is not None:
                    self.S[a, b] = matcher.compare(tmpl[a], tmpl[b])
        self.ok = np.array([t is not None for t in tmpl])
        ids: dict = {}
        self.identity = np.array([ids.setdefault(datasets.identity(n, f), len(ids)) for n, f, _ in self.keys])
        self.set = np.array([n for n, _, _ in self.keys])
        self.press = np.array([i for _, _, i in self.keys])
        self.comparisons = m * (m - 1)

    def with_scores(self, scores: np.ndarray) -> Year:
        """This year with another score matrix of the same presses (normalised scores)."""
        other = object.__new__(Year)
        other.__dict__.update(self.__dict__)
        other.S = scores
        return other

    def cohort_scores(self, cohort: Year) -> np.ndarray:
        """(cohort presses, this year's presses): each cohort press compared, as the probe, with each template."""
        from fpverify import matcher

        out = np.full((len(cohort.templates), len(self.templates)), np.nan)
        for a, c in enumerate(cohort.templates):
            if c is None:
                continue
            for b, t in enumerate(self.templates):
                if t is not None:
                    out[a, b] = matcher.compare(c, t)
        return out

    def normalised(self, cohorts: list[tuple[Year, np.ndarray]], minimum: int = decision.MIN_COHORT) -> Year:
        """Scores normalised per template (column) by its cohort's: the presses of `cohorts`' years,
        never the template's own finger (datasets.SAME_FINGER)."""
        S = self.S.copy()
        for j in np.flatnonzero(self.ok):
            scores = [
                block[[k for k, f in enumerate(c.finger) if f != self.finger[j] and c.ok[k]], j]
                for c, block in cohorts
            ]
            z = decision.cohort_of(np.concatenate(scores), minimum)
            S[:, j] = (S[:, j] - z.mean) / z.sd
        return self.with_scores(S)

    def same_set_impostors(self) -> list[np.ndarray]:
        """One-comparison impostor scores of each set (each sensor), both orders."""
        diff = (self.identity[:, None] != self.identity[None]) & self.ok[:, None] & self.ok[None]
        sets = dict.fromkeys(self.set.tolist())
        return [self.S[diff & (self.set[:, None] == n) & (self.set[None] == n)] for n in sets]

    def cards(self, k: int, fingers: int) -> list[np.ndarray]:
        """Cards of `fingers` fingers, each enrolled with its first k presses (neighbours in a set)."""
        out = []
        for name in dict.fromkeys(self.set.tolist()):
            ids = list(dict.fromkeys(self.identity[self.set == name].tolist()))
            for j in range(len(ids)):
                group = [ids[(j + g) % len(ids)] for g in range(fingers)]
                out.append(
                    np.flatnonzero(np.isin(self.identity, group) & (self.set == name) & (self.press <= k))
                )
        return out

    def decisions(self, card: np.ndarray, first_probe: int) -> tuple[np.ndarray, np.ndarray]:
        """(impostor best scores, genuine best scores) of the presses from `first_probe` on."""
        card = card[self.ok[card]]
        mine = np.isin(self.identity, self.identity[card])
        probes = self.ok & (self.press >= first_probe)
        best = self.S[:, card].max(axis=1) if len(card) else np.zeros(len(self.S))
        own_sets = set(self.set[card].tolist())
        genuine = probes & mine & np.isin(self.set, list(own_sets))
        return best[probes & ~mine], best[genuine]


def _templates(root: Path, sets: list[str], condition: str, cache: Path | None, extraction: ExtractionParams):
    out = {}
    for name in sets:
        images, dpi = datasets.load_condition(root, name, condition)
        out[name], _, _ = extract_all(images, dpi, cache, f"{name}-{condition}", lambda: None, extraction)
    return out


def check_year(year: Year, thresholds: dict[str, float], scale: float, enroll: int) -> dict:
    """Measured FMR (and FNMR) at each point for cards of 1, K, 2K and 3K templates."""
    layouts = {1: (1, 1), enroll: (enroll, 1), 2 * enroll: (enroll, 2), 3 * enroll: (enroll, 3)}
    out: dict = {}
    for n, (k, fingers) in layouts.items():
        imp, gen = [], []
        for card in year.cards(k, fingers):
            i, g = year.decisions(card, enroll + 1)
            imp.append(i)
            gen.append(g)
        imp, gen = np.concatenate(imp), np.concatenate(gen)
        for p, base in thresholds.items():
            t = decision.threshold_for(base, scale, n)
            fa = int((imp >= t).sum())
            out.setdefault(p, {})[str(n)] = {
                "threshold": t,
                "false_accepts": fa,
                "impostor_decisions": len(imp),
                "FMR": fa / len(imp),
                "FMR_upper95": metrics.upper95(fa, len(imp)),
                "estimate": len(imp) < 10 / decision.point_rate(p),
                "FNMR": float((gen < t).mean()),
                "genuine_decisions": len(gen),
            }
    return out


def run(
    root: Path,
    condition: str,
    out: Path,
    enroll: int = 3,
    cache: Path | None = None,
    extraction: ExtractionParams | None = None,
    cohort: bool = False,
    by_year: dict[str, ExtractionParams] | None = None,
) -> dict:
    """`by_year`: each listed FVC year's presses extracted with its own parameters, a network trained
    without that year (as `accuracy.run`): the fit then sees every year as the field sees a network."""
    extraction = extraction or ExtractionParams()
    by_year = by_year or {}
    held = held_out_extractors(by_year, list(datasets.FVC_SETS))
    out.mkdir(parents=True, exist_ok=True)  # before the work: an unwritable --out fails at once
    years: dict[str, Year] = {}
    for y in ("2000", "2002", "2004"):
        sets = [s for s in datasets.FVC_SETS if s.startswith(f"fvc{y}_")]
        missing = [s for s in sets if not (root / s).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"calibration needs all 12 FVC sets; missing {', '.join(missing)} under {root} "
                "(set FPVERIFY_DATASETS or --datasets)"
            )
        years[y] = Year(_templates(root, sets, condition, cache, by_year.get(y, extraction)))
    raw = years
    cross: dict[tuple[str, str], np.ndarray] = {}
    if cohort:  # (template year, cohort year) -> scores
        cross = {(y, c): raw[y].cohort_scores(raw[c]) for y in raw for c in raw if c != y}

    def year(y: str, held: str | None) -> Year:
        """Year y as decided: raw, or normalised by the cohort years (neither y nor `held`)."""
        if not cohort:
            return raw[y]
        return raw[y].normalised([(raw[c], cross[(y, c)]) for c in raw if c not in (y, held)])

    years = {y: year(y, None) for y in raw}
    pool = {y: yr.same_set_impostors() for y, yr in years.items()}
    thresholds, scale = decision.fit([s for v in pool.values() for s in v], POINTS, shifted=cohort)
    res: dict = {
        "condition": condition,
        "enroll": enroll,
        "cohort": "other-years" if cohort else None,
        "extractor": extraction.detector.describe(),
        **({"extractor_by_year": held} if held else {}),
        "fit": {
            "THRESHOLDS": thresholds,
            "TAIL_SCALE": scale,
            "impostor_comparisons": int(sum(len(s) for v in pool.values() for s in v)),
        },
        "comparisons": int(sum(yr.comparisons for yr in years.values()) + sum(b.size for b in cross.values())),
        "leave_one_year_out": {},
    }
    for y, yr in years.items():
        held = {k: year(k, y).same_set_impostors() for k in raw if k != y} if cohort else pool
        train = [s for k, v in held.items() if k != y for s in v]
        t_y, s_y = decision.fit(train, POINTS, shifted=cohort)
        res["leave_one_year_out"][y] = {
            "fit": {"THRESHOLDS": t_y, "TAIL_SCALE": s_y, "impostor_comparisons": int(sum(map(len, train)))},
            "check": check_year(yr, t_y, s_y, enroll),
        }
    (out / "results.json").write_text(json.dumps(res, indent=2))
    (out / "report.md").write_text(report(res))
    return res


def report(res: dict) -> str:
    f = res["fit"]
    lines = [
        f"# Calibration of the desk decision ({res['condition']} images"
        + (", cohort-normalised scores: other FVC years)" if res.get("cohort") else ")"),
        "",
        f"Fitted on all 12 sets ({f['impostor_comparisons']} same-set impostor comparisons): "
        + ", ".join(f"{p} {t:.4f}" for p, t in f["THRESHOLDS"].items())
        + f", TAIL_SCALE {f['TAIL_SCALE']:.4f}.",
        "",
        *held_out_lines(res.get("extractor_by_year", {}), "presses: detector "),
        "",
        "## Leave one FVC year out",
        "",
        "Fitted on the other two years, measured on this year's desk decisions (cards of n templates: the",
        f"first press, the first {res['enroll']}, or the first {res['enroll']} of 2 or 3 fingers). FMR as false accepts /",
        "impostor decisions, its one-sided 95 % upper bound; '~' marks an estimate (fewer than 10 / rate",
        "decisions).",
        "",
        "| year | point | n | threshold | FMR % (accepts / decisions) | upper 95 % | within its name | FNMR % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for y, r in res["leave_one_year_out"].items():
        for p, by_n in r["check"].items():
            for n, c in by_n.items():
                ok = "yes" if c["FMR"] <= decision.point_rate(p) else "**no**"
                mark = "~" if c["estimate"] else ""
                lines.append(
                    f"| {y} | {p} | {n} | {c['threshold']:.4f} | {mark}{100 * c['FMR']:.4f} "
                    f"({c['false_accepts']} / {c['impostor_decisions']}) | {100 * c['FMR_upper95']:.3f} | "
                    f"{ok} | {100 * c['FNMR']:.2f} |"
                )
    lines.append("")
    return "\n".join(lines)
