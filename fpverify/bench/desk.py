"""Desk benchmark: FVC presses decided as the station decides them (`fpverify bench desk`).

Protocol (per set of fingers x presses, presses in file order):
  enrollment  each finger's first K presses (K = --enroll, 3 by default): the card's templates;
  genuine     every later press of the finger, decided against its own enrollment;
  retry       two later presses in a row (press j, then j + 1) both rejected: the holder is turned away
              after one retry (FNMR_after_retry, over the consecutive pairs);
  impostors   every later press against every other finger's enrollment, within the set (sets.<set>,
              pooled_same_set) and across all the sets run (pooled: each probe against every other
              finger of every set; a finger found in two sets, datasets.SAME_FINGER, is one finger).
  cards       with --fingers N, a card holds N neighbouring fingers of a set (a holder enrolled with
              two fingers, as stations do by default): N * K templates compared with every press,
              and a press is an impostor only against cards without its finger.
A decision takes the best score over the card's usable templates and compares it with
matcher.decision_threshold(point, n) for that template count n: the station's rule (edge.workflow).
With a cohort (--cohort other-years) each enrolled template is normalised by its scores against the
presses of the other FVC years (matcher.decision.Cohort: never the template's own finger) and the
decision is on the best normalised score against decision.cohort_threshold(point, n).
A press that fails to extract is a rejected genuine attempt and no impostor decision; a finger with
no usable enrollment press is counted and left out.
Below 10 / rate impostor decisions a figure cannot resolve its rate: it is marked as an estimate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpverify.bench import datasets, metrics
from fpverify.bench.accuracy import extract_all, held_out_extractors, held_out_lines
from fpverify.matcher import decision
from fpverify.matcher.decision import empirical_threshold, point_rate
from fpverify.matcher.params import ExtractionParams

FITTED = {"fmr_1e-3": 1e-3, "fmr_1e-4": 1e-4}  # FNMR at these rates, thresholds fitted on the impostors


@dataclass
class Fingers:
    """Best scores of every probe press against every card (finger enrollment) of the run."""

    best: np.ndarray  # (probes, cards) float64: best score over the card's usable templates
    probe_ok: np.ndarray  # (probes,) bool: the press extracted
    probe_card: np.ndarray  # (probes,) card index of the probe's own finger
    probe_set: np.ndarray  # (probes,) set index
    next_probe: np.ndarray  # (probes,) index of the finger's next press, -1 for the last
    card_set: np.ndarray  # (cards,) set index
    card_n: np.ndarray  # (cards,) usable templates on the card
    probe_identity: np.ndarray  # (probes,) one number per finger (datasets.identity: a finger in two sets is one)
    card_holds: np.ndarray  # (identities, cards) bool: the card holds that finger
    comparisons: int
    unenrolled: int


def other_years(sets: list[str]) -> dict[str, list[str]]:
    """The cohort of each FVC set: the sets of the two other FVC years (never the set's own fingers)."""
    out = {}
    for name in sets:
        if name not in datasets.FVC_SETS:
            raise ValueError(f"--cohort other-years needs FVC sets; {name} is not one")
        out[name] = [s for s in datasets.FVC_SETS if datasets.year_of(s) != datasets.year_of(name)]
    return out


def cohort_stats(enrolled: list, cohort: list, minimum: int) -> list:
    """decision.Cohort of each enrolled template: the cohort's presses compared with it as probes."""
    from fpverify import matcher

    return [decision.cohort_of([matcher.compare(c, x) for c in cohort], minimum) for x in enrolled]


def score(
    templates: dict[str, dict],
    enroll: int,
    cohorts: dict[str, list] | None = None,
    min_cohort: int = decision.MIN_COHORT,
    fingers_per_card: int = 1,
) -> Fingers:
    """Compare every later press of every set with every card: the first `enroll` presses of
    `fingers_per_card` neighbouring fingers of a set (a holder enrolled with two fingers: 2 * enroll
    templates, all compared with each press, as the station does; the last card of a set may hold fewer).

    `cohorts` (set -> (identity, template) of the cohort's presses): scores normalised per enrolled
    template (Cohort), its own finger's presses (datasets.SAME_FINGER) left out of its cohort.
    """
    from fpverify import matcher

    cards, card_set, card_n, unenrolled = [], [], [], 0
    identities: dict[tuple[str, int], int] = {}
    holds: list[tuple[int, int]] = []  # (identity, card)
    probes: list[tuple[object, int, int, int]] = []  # (template, own card, set, identity)
    stats: list[list] = []  # per card, the Cohort of each enrolled template (with cohorts)
    cohort_comparisons = 0
    next_probe: list[int] = []
    for si, (name, t) in enumerate(templates.items()):
        by_finger: dict[int, list] = {}
        for (finger, _), tmpl in sorted(t.items()):
            by_finger.setdefault(finger, []).append(tmpl)
        usable = []
        for finger, presses in by_finger.items():
            if any(x is not None for x in presses[:enroll]):
                usable.append(finger)
            else:
                unenrolled += 1
        for start in range(0, len(usable), fingers_per_card):
            c = len(cards)
            enrolled, card_stats = [], []
            for finger in usable[start : start + fingers_per_card]:
                mine = [x for x in by_finger[finger][:enroll] if x is not None]
                me = datasets.identity(name, finger)
                ident = identities.setdefault(me, len(identities))
                holds.append((ident, c))
                enrolled += mine
                if cohorts is not None:
                    others = [t for i, t in cohorts[name] if i != me]
                    card_stats += cohort_stats(mine, others, min_cohort)
                    cohort_comparisons += len(mine) * len(others)
                later = by_finger[finger][enroll:]
                for j, tmpl in enumerate(later):
                    next_probe.append(len(probes) + 1 if j + 1 < len(later) else -1)
                    probes.append((tmpl, c, si, ident))
            cards.append(enrolled)
            stats.append(card_stats)
            card_set.append(si)
            card_n.append(len(enrolled))
    for enrolled in cards:  # descriptors are built once per template
        for x in enrolled:
            _ = x.geometry
    best = np.full((len(probes), len(cards)), -np.inf if cohorts is not None else 0.0)
    comparisons = 0
    for i, (p, *_) in enumerate(probes):
        if p is None:
            continue
        for c, enrolled in enumerate(cards):
            if cohorts is None:
                best[i, c] = max(matcher.compare(p, x) for x in enrolled)
            else:
                best[i, c] = max(z.normalise(matcher.compare(p, x)) for x, z in zip(enrolled, stats[c], strict=True))
            comparisons += len(enrolled)
    card_holds = np.zeros((len(identities), len(cards)), bool)
    for ident, c in holds:
        card_holds[ident, c] = True
    return Fingers(
        best=best,
        probe_ok=np.array([p[0] is not None for p in probes], bool),
        probe_card=np.array([p[1] for p in probes], np.intp),
        probe_set=np.array([p[2] for p in probes], np.intp),
        next_probe=np.array(next_probe, np.intp),
        card_set=np.array(card_set, np.intp),
        card_n=np.array(card_n, np.intp),
        probe_identity=np.array([p[3] for p in probes], np.intp),
        card_holds=card_holds,
        comparisons=comparisons + cohort_comparisons,
        unenrolled=unenrolled,
    )


def _genuine(f: Fingers, sets: np.ndarray, accept: np.ndarray) -> dict:
    """FNMR and FNMR after one retry of the probes in `sets`; `accept` is per probe (own card)."""
    mine = np.isin(f.probe_set, sets)
    rejected = ~accept
    pairs = mine & (f.next_probe >= 0)
    both = rejected[pairs] & rejected[f.next_probe[pairs]]
    return {
        "FNMR": float(rejected[mine].mean()) if mine.any() else 0.0,
        "FNMR_after_retry": float(both.mean()) if pairs.any() else 0.0,
        "genuine_decisions": int(mine.sum()),
        "retry_pairs": int(pairs.sum()),
    }


def _impostor_mask(f: Fingers, sets: np.ndarray, same_set: bool) -> np.ndarray:
    """(probes, cards) True where the probe is an impostor decision counted for these sets."""
    m = f.probe_ok[:, None] & ~f.card_holds[f.probe_identity]  # never a card holding the probe's finger
    m &= np.isin(f.probe_set, sets)[:, None] & np.isin(f.card_set, sets)[None]
    if same_set:
        m &= f.probe_set[:, None] == f.card_set[None]
    return m


def evaluate(f: Fingers, sets: np.ndarray, same_set: bool, thresholds: dict[str, np.ndarray]) -> dict:
    """{point: {FMR, FNMR, FNMR_after_retry, impostor_decisions, ...}} at each card's threshold."""
    imp = _impostor_mask(f, sets, same_set)
    own = f.best[np.arange(len(f.probe_card)), f.probe_card]
    out = {}
    for point, per_card in thresholds.items():
        accepted = f.best >= per_card[None]
        fa = int((accepted & imp).sum())
        n = int(imp.sum())
        row = {"FMR": fa / n if n else 0.0, **_genuine(f, sets, f.probe_ok & (own >= per_card[f.probe_card]))}
        row.update(
            impostor_decisions=n,
            false_accepts=fa,
            estimate=n < 10 / point_rate(point),
            FMR_upper95=metrics.upper95(fa, n),
        )
        out[point] = {
            k: row[k]
            for k in (
                "FMR",
                "FNMR",
                "FNMR_after_retry",
                "impostor_decisions",
                "false_accepts",
                "FMR_upper95",
                "estimate",
                "genuine_decisions",
                "retry_pairs",
            )
        }
    return out


def fitted(f: Fingers, sets: np.ndarray, same_set: bool) -> dict:
    """FNMR at FMR 1e-3 and 1e-4 with one threshold fitted on these impostor decisions (an oracle)."""
    imp = _impostor_mask(f, sets, same_set)
    scores = f.best[imp]
    own = f.best[np.arange(len(f.probe_card)), f.probe_card]
    out = {}
    for name, rate in FITTED.items():
        t = empirical_threshold(scores, rate) if len(scores) else 1.0
        g = _genuine(f, sets, f.probe_ok & (own >= t))
        out[name] = {
            "threshold": t,
            "FNMR": g["FNMR"],
            "FNMR_after_retry": g["FNMR_after_retry"],
            "impostor_decisions": int(len(scores)),
            "estimate": len(scores) < 10 / rate,
        }
    return out


def run(
    root: Path,
    sets: list[str],
    condition: str,
    out: Path,
    enroll: int = 3,
    cache: Path | None = None,
    extraction: ExtractionParams | None = None,
    cohort: dict[str, list[str]] | None = None,
    min_cohort: int = decision.MIN_COHORT,
    fingers_per_card: int = 1,
    by_year: dict[str, ExtractionParams] | None = None,
) -> dict:
    """`cohort` (set -> the sets whose presses normalise its cards, e.g. other_years): the normalised
    decision (module docstring); None: the raw best-of-n decision. `by_year`: each listed FVC year's
    presses (cards and cohort alike) extracted with its own parameters, a network trained without that
    year (as `accuracy.run`)."""
    from fpverify import matcher

    if condition not in ("native", "sensor"):
        raise ValueError("condition must be native or sensor")
    if enroll < 1:
        raise ValueError("--enroll must be at least 1")
    if fingers_per_card < 1:
        raise ValueError("--fingers must be at least 1")
    extraction = extraction or ExtractionParams()
    by_year = by_year or {}
    used = sorted({*sets, *(c for cs in (cohort or {}).values() for c in cs)})  # the cohort's presses too
    held = held_out_extractors(by_year, used)
    out.mkdir(parents=True, exist_ok=True)  # before the work: an unwritable --out fails at once
    loaded: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in loaded:
            images, dpi = datasets.load_condition(root, name, condition)
            presses = max(k[1] for k in images)
            if name in sets and presses <= enroll + 1:
                raise ValueError(f"{name}: {presses} presses a finger leave no retry after enrolling {enroll}")
            params = by_year.get(datasets.year_of(name), extraction)
            loaded[name], _, _ = extract_all(images, dpi, cache, f"{name}-{condition}", lambda: None, params)
        return loaded[name]

    templates = {name: load(name) for name in sets}
    presses_of = None
    if cohort is not None:
        if set(cohort) != set(sets) or any(n in cohort[n] for n in sets):
            raise ValueError("a cohort names the other sets of every set run (never the set itself)")
        presses_of = {
            n: [(datasets.identity(c, f), t) for c in cohort[n] for (f, _), t in load(c).items() if t is not None]
            for n in sets
        }
    f = score(templates, enroll, presses_of, min_cohort, fingers_per_card)
    points = [p for p in matcher.THRESHOLDS if p.startswith("fmr_")]

    def threshold(p: str, n: int) -> float:
        return decision.cohort_threshold(p, n) if cohort is not None else matcher.decision_threshold(p, n)

    thresholds = {p: np.array([threshold(p, int(n)) for n in f.card_n]) for p in points}
    everything = np.arange(len(sets))
    results: dict = {
        "condition": condition,
        "enroll": enroll,
        "fingers_per_card": fingers_per_card,
        "cohort": None if cohort is None else {n: sorted(c) for n, c in cohort.items()},
        "extractor": extraction.detector.describe(),
        **({"extractor_by_year": held} if held else {}),
        "thresholds": {
            p: {str(n): threshold(p, int(n)) for n in sorted(set(f.card_n.tolist()))} for p in points
        },
        "comparisons": f.comparisons,
        "unenrolled_fingers": f.unenrolled,
        "sets": {name: evaluate(f, np.array([i]), True, thresholds) for i, name in enumerate(sets)},
        "pooled": evaluate(f, everything, False, thresholds),
        "pooled_same_set": evaluate(f, everything, True, thresholds),
        "fitted": {
            "sets": {name: fitted(f, np.array([i]), True) for i, name in enumerate(sets)},
            "pooled": fitted(f, everything, False),
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(report(results))
    return results


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _fmr(r: dict) -> str:
    """FMR as measured, with its count; '~' marks an estimate (fewer than 10 / rate decisions)."""
    mark = "~" if r["estimate"] else ""
    return f"{mark}{100 * r['FMR']:.4f} ({r['false_accepts']} / {r['impostor_decisions']}) | {100 * r['FMR_upper95']:.4f}"


def report(res: dict) -> str:
    ex = res["extractor"]
    model = f", model {ex['model']} (held out: {ex.get('held_out') or '-'})" if "model" in ex else ""
    lines = [
        f"# Desk decisions ({res['condition']} images, {res['enroll']} presses enrolled a finger, "
        f"{res['fingers_per_card']} finger(s) a card)",
        "",
        *(
            [
                "Scores normalised per enrolled template by its impostor cohort (the presses of the",
                "sets named in results.json `cohort`); thresholds decision.cohort_threshold(point, n).",
                "",
            ]
            if res.get("cohort")
            else []
        ),
        "Each finger enrolled with its first K presses; every later press decided as the station decides:",
        "best score over the card's templates against "
        + ("decision.cohort_threshold" if res.get("cohort") else "matcher.decision_threshold")
        + "(point, n templates).",
        "Impostors: every later press against every other finger's enrollment (per set: same set;",
        "pooled: every finger of every set). FNMR after retry: two presses in a row rejected.",
        "Rates in %; FMR as false accepts / impostor decisions, with its one-sided 95 % upper bound",
        "(Clopper-Pearson); '~' marks an estimate (fewer than",
        f"10 / rate impostor decisions). {res['comparisons']} comparisons; detector {ex['detector']}{model}.",
    ]
    lines += held_out_lines(res.get("extractor_by_year", {}), "presses: detector ")
    if res["unenrolled_fingers"]:
        lines.append(f"{res['unenrolled_fingers']} fingers had no usable enrollment press and are left out.")
    for point, by_n in res["thresholds"].items():
        ts = ", ".join(f"n={n}: {t:.4f}" for n, t in by_n.items())
        lines += [
            "",
            f"## {point} (threshold {ts})",
            "",
            "| set | FMR % (accepts / decisions) | FMR upper 95 % | FNMR % | FNMR after retry % | genuine | retry pairs |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = [(name, r[point]) for name, r in res["sets"].items()]
        rows += [
            ("**pooled**", res["pooled"][point]),
            ("pooled, same set only", res["pooled_same_set"][point]),
        ]
        for name, r in rows:
            lines.append(
                f"| {name} | {_fmr(r)} | {_pct(r['FNMR'])} | {_pct(r['FNMR_after_retry'])} | "
                f"{r['genuine_decisions']} | {r['retry_pairs']} |"
            )
    lines += [
        "",
        "## FNMR at a threshold fitted on these impostor decisions (an oracle, for comparison)",
        "",
        "| set | " + " | ".join(f"{k}: FNMR % / after retry % / threshold" for k in FITTED) + " |",
        "|---|" + "---|" * len(FITTED),
    ]
    fit_rows = [*res["fitted"]["sets"].items(), ("**pooled**", res["fitted"]["pooled"])]
    for name, r in fit_rows:
        cells = [
            f"{'~' if r[k]['estimate'] else ''}{_pct(r[k]['FNMR'])} / {_pct(r[k]['FNMR_after_retry'])} / "
            f"{r[k]['threshold']:.4f}"
            for k in FITTED
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
