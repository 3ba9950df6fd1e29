"""Research (issue 17 part 2, docs/matcher.md lever table): the learned detector's minutia quality
(network probability x border ramp) also multiplied by the local ridge reliability (flow coherence x
ridge clarity, `Prepared.reliability_at`, which the skeleton detector's quality already is) raised to
a power beta. The doubtful minutiae of noisy presses would then count less in the quality-weighted
pairing. Held out: each FVC year extracted by a network trained without it, beta chosen per year on
the other two years' mean all-pairs EER (or FMR1000: both are reported).

    python scripts/research/reliability_quality.py extract --condition sensor --work W \\
        --model 2000=h2000-int8.onnx --model 2004=h2004-int8.onnx     # 2002: the shipped network
    python scripts/research/reliability_quality.py score --condition sensor --work W --betas 0,0.5,1,2
    python scripts/research/reliability_quality.py matrix --condition sensor --work W --betas 0.5
        # W/S_sensor_0.5.npz: the 960 x 960 desk matrix for desk_levers.py (K=5)
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from match_params_grid import all_pairs, mean, pooled_fnmr

from fpverify import matcher
from fpverify.bench import datasets, metrics
from fpverify.matcher.detectors import FusedDetector
from fpverify.matcher.features import Features, _features, prepare
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.template import Template

YEARS = ("2000", "2002", "2004")


def extract(condition: str, work: Path, models: dict[str, str], overrides: dict | None = None) -> None:
    """Every FVC image's minutiae (as `matcher.extract` gives them, with `overrides` of ExtractionParams
    fields) and each minutia's reliability."""
    root = datasets.default_root()
    out = {}
    for name in datasets.FVC_SETS:
        model = models.get(name[3:7])
        params = ExtractionParams(**(overrides or {}), **({"detector": FusedDetector(model=model)} if model else {}))
        images, dpi = datasets.load_condition(root, name, condition)
        for (f, i), img in sorted(images.items()):
            try:
                p = prepare(img, dpi, params)
                if isinstance(p, Features):
                    raise ValueError("no finger area")
                m = params.detector.detect(p, params, None)
                feats = _features(p, m, params)
                rel = np.clip(p.reliability_at(m.x, m.y), 0, 1).astype(np.float32) if len(m) else np.zeros(0, np.float32)
            except ValueError:
                out[(name, f, i)] = None
                continue
            out[(name, f, i)] = (feats.minutiae, rel, feats.shape, feats.mask, feats.mask_block, dpi)
        print(name, flush=True)
    (work / f"rel-{condition}.pkl").write_bytes(pickle.dumps(out))


def template(entry, beta: float) -> Template | None:
    if entry is None:
        return None
    m, rel, shape, mask, block, dpi = entry
    m = m.copy()
    m[:, 3] *= rel**beta
    # as matcher.extract builds it
    return Template(m, shape, mask=mask, mask_block=block, dpi=dpi)


def score(condition: str, work: Path, betas: list[float]) -> None:
    data = pickle.loads((work / f"rel-{condition}.pkl").read_bytes())
    table = {}  # beta -> set -> (EER, FMR1000, genuine, impostor)
    for beta in betas:
        table[beta] = {}
        for name in datasets.FVC_SETS:
            keys = sorted(k for k in data if k[0] == name)
            t = [template(data[k], beta) for k in keys]
            gen, imp = all_pairs([k[1] for k in keys], t, lambda a, b: (
                matcher.compare(a, b) if a is not None and b is not None else 0.0))
            r = metrics.rates(gen, imp)
            table[beta][name] = (r["EER"], r["FMR1000"], gen, imp)
        m = table[beta]
        print(f"beta {beta}: mean EER {100 * np.mean([v[0] for v in m.values()]):.2f} "
              f"FMR1000 {100 * np.mean([v[1] for v in m.values()]):.2f} ({_pooled(m.values())})", flush=True)

    for select, label in ((0, "EER"), (1, "FMR1000")):
        chosen = {}
        for y in YEARS:
            train = [x for x in YEARS if x != y]
            chosen[y] = min(betas, key=lambda b: mean(table[b], train, select))
        held = {k: table[chosen[k[3:7]]][k] for k in datasets.FVC_SETS}
        print(f"chosen per held-out year by the other years' {label}:", chosen)
        print(f"  held out: mean EER {100 * np.mean([v[0] for v in held.values()]):.2f} "
              f"FMR1000 {100 * np.mean([v[1] for v in held.values()]):.2f} ({_pooled(held.values())})")


def matrix(condition: str, work: Path, beta: float) -> None:
    from desk_allpairs import KEYS, save, score_matrix

    data = pickle.loads((work / f"rel-{condition}.pkl").read_bytes())
    tmpl = [template(data[k], beta) for k in KEYS]
    save(work / f"S_{condition}_{beta:g}.npz", score_matrix(tmpl), tmpl)


def _pooled(rows) -> str:
    rows = list(rows)
    gen = np.concatenate([r[2] for r in rows])
    imp = np.concatenate([r[3] for r in rows])
    parts = [f"pooled FNMR at {f:g} {v:.2f} %" for f, v in pooled_fnmr(gen, imp).items()]
    return ", ".join(parts) + f"; {len(gen)} genuine, {len(imp)} impostor"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("extract", "score", "matrix"))
    ap.add_argument("--condition", default="sensor")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", action="append", default=[], help="YEAR=path of a network trained without YEAR")
    ap.add_argument("--betas", default="0,0.5,1,2")
    ap.add_argument("--extraction", default="{}", help="JSON of ExtractionParams fields to change (extract)")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.step == "extract":
        extract(a.condition, a.work, dict(x.split("=", 1) for x in a.model), json.loads(a.extraction))
    elif a.step == "score":
        score(a.condition, a.work, [float(b) for b in a.betas.split(",")])
    else:
        for b in a.betas.split(","):
            matrix(a.condition, a.work, float(b))


if __name__ == "__main__":
    main()
