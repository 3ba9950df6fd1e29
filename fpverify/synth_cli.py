"""CLI: `fpverify synth`, `fpverify sensor-sim`, `fpverify bench synth`, `fpverify bench sensor-download`."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command("synth")(synth)
    app.command("sensor-sim")(sensor_sim)
    bench.command("synth")(bench_synth)
    bench.command("sensor-download")(bench_sensor_download)


def synth(
    out: Path = typer.Option(..., help="Folder for <finger>_<impression>.png and ground_truth.json"),
    fingers: int = typer.Option(10, min=1, max=100000),
    impressions: int = typer.Option(8, min=1, max=1000),
    seed: int = typer.Option(0, help="Same seed, same images"),
) -> None:
    """Generate synthetic fingerprints, FVC style (fingers numbered from 101), with ground-truth minutiae."""
    import cv2
    from rich.progress import Progress

    from fpverify.matcher import synth as s

    out.mkdir(parents=True, exist_ok=True)
    truth: dict = {
        "format": "fpverify-synth-1",
        "dpi": 500,
        "seed": seed,
        "minutiae_columns": ["x", "y", "angle_rad_iso", "type(1=ending,2=bifurcation)"],
        "fingers": {},
    }
    with Progress() as progress:
        task = progress.add_task("fingers", total=fingers)
        for i in range(fingers):
            finger_id = 101 + i
            master = s.generate_finger(seed * 1_000_003 + i)
            entry = {"class": master.kind, "impressions": {}}
            for k in range(impressions):
                image, minutiae = s.impression(master, k, seed)
                name = f"{finger_id}_{k + 1}.png"
                if not cv2.imwrite(str(out / name), image):
                    raise typer.BadParameter(f"cannot write {out / name}")
                entry["impressions"][name] = [[round(float(v), 3) for v in row] for row in minutiae]
            truth["fingers"][str(finger_id)] = entry
            progress.advance(task)
    (out / "ground_truth.json").write_text(json.dumps(truth))
    typer.echo(f"wrote {fingers * impressions} images and ground_truth.json to {out}")


def sensor_sim(
    images: Path = typer.Option(..., exists=True, file_okay=False, help="Folder of finger images"),
    baud: int = typer.Option(0, help="Pace the line in real time at this baud rate (0: as fast as possible)"),
    password: int = typer.Option(0, help="Sensor password (32-bit)"),
    packet_size: int = typer.Option(128, help="Data packet size: 32, 64, 128 or 256"),
    loop: bool = typer.Option(True, help="Start again from the first image after the last"),
) -> None:
    """Serve a simulated ZFM sensor on a pty; the first output line is the pty path.

    Each read-image call presents the next image of the folder (name order).
    """
    import signal
    import sys
    import threading

    from fpverify.edge.sensor.simulator import SimulatedSensor, images_in

    files = images_in(images)
    if not files:
        raise typer.BadParameter(f"no images in {images}")
    sim = SimulatedSensor(images=files, password=password, baud=baud or None, packet_size=packet_size, loop=loop)
    path = sim.start()
    print(path, flush=True)
    print(f"serving {len(files)} images from {images}; Ctrl-C to stop", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def bench_synth(
    out: Path = typer.Option(..., help="Folder for results.json and report.md"),
    fingers: int = typer.Option(100, min=1),
    impressions: int = typer.Option(8, min=1),
    seed: int = typer.Option(0),
    baseline_fingers: int = typer.Option(3, min=0, help="Masters grown at full resolution for comparison"),
    match_fingers: int = typer.Option(30, min=0, help="Fingers extracted and compared all-pairs: impostor "
                                      "rate at each shipped operating point, against the real sets' (0: skip)"),
    condition: str = typer.Option("sensor", help="sensor (the station's 288x256, 4-bit images) or native"),
    real: bool = typer.Option(True, help="Measure the FVC sets by the same protocol in the same run"),
    datasets: Path = typer.Option(None, help="Folder of the FVC sets (default $FPVERIFY_DATASETS or ../shared/datasets)"),
    cache: Path = typer.Option(None, help="Template cache folder for the FVC sets (as bench accuracy --cache)"),
) -> None:
    """Time synthetic generation (masters + impressions, no file I/O) against the 2-minute budget;
    then the impostor rate of synthetic fingers at each shipped operating point against the real FVC
    sets' by the same protocol (issue 18; fpverify/bench/synth.py)."""
    from rich.progress import Progress

    from fpverify.bench import synth as variety
    from fpverify.matcher import synth as s

    if condition not in variety.CONDITIONS:
        raise typer.BadParameter(f"--condition must be one of {', '.join(variety.CONDITIONS)}")
    if match_fingers and real:
        from fpverify.bench import datasets as ds

        root = datasets or ds.default_root()
        if not ds.available_sets(root):
            typer.echo(f"error: {ds.missing(root)}; or --no-real", err=True)  # one line, the path whole
            raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    per_impression, master_times, counts = [], [], []
    start = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task("fingers", total=fingers)
        for i in range(fingers):
            t0 = time.perf_counter()
            master = s.generate_finger(seed * 1_000_003 + i)
            master_s = time.perf_counter() - t0
            master_times.append(master_s)
            for k in range(impressions):
                t1 = time.perf_counter()
                _, minutiae = s.impression(master, k, seed)
                per_impression.append(time.perf_counter() - t1 + master_s / impressions)
                counts.append(len(minutiae))
            progress.advance(task)
    seconds = time.perf_counter() - start
    # baseline: the same masters grown at full resolution throughout
    fast, slow = [], []
    for i in range(baseline_fingers):
        for half, bucket in ((True, fast), (False, slow)):
            t0 = time.perf_counter()
            s.generate_finger(seed * 1_000_003 + i, half_resolution=half)
            bucket.append(time.perf_counter() - t0)
    results = {
        "fingers": fingers,
        "impressions": impressions,
        "seconds": round(seconds, 3),
        "ms_per_impression_median": round(1000 * statistics.median(per_impression), 2),
        "ms_per_master_median": round(1000 * statistics.median(master_times), 2),
        "minutiae_per_impression_median": statistics.median(counts),
        "baseline_full_resolution_master_ms_median": round(1000 * statistics.median(slow), 2) if slow else None,
        "half_resolution_master_ms_median": round(1000 * statistics.median(fast), 2) if fast else None,
    }
    if match_fingers:
        results["matching"] = variety_run(seed, min(match_fingers, fingers), impressions, condition,
                                          root if real else None, cache)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    ratio = (
        f"{statistics.median(slow) / statistics.median(fast):.1f}x faster than growing at full resolution "
        f"({results['baseline_full_resolution_master_ms_median']} ms vs {results['half_resolution_master_ms_median']} ms "
        f"per master, median of {baseline_fingers}, same run)"
        if slow
        else "no baseline run"
    )
    (out / "report.md").write_text(
        f"# Synthetic fingerprint generation\n\n"
        f"{fingers} fingers x {impressions} impressions in **{seconds:.1f} s** on one core "
        f"(budget 120 s: {'met' if seconds < 120 else 'MISSED'}).\n\n"
        f"- median per impression (master time amortised): {results['ms_per_impression_median']} ms\n"
        f"- median per master: {results['ms_per_master_median']} ms\n"
        f"- median ground-truth minutiae per impression: {results['minutiae_per_impression_median']}\n"
        f"- ridge growth at half resolution: {ratio}\n"
        + (variety.report(results["matching"]) if match_fingers else "")
        + f"\nCommand: `fpverify bench synth --fingers {fingers} --impressions {impressions} --seed {seed} "
        f"--baseline-fingers {baseline_fingers} --match-fingers {match_fingers} --condition {condition}"
        f"{'' if real else ' --no-real'} --out {out}`\n"
    )
    typer.echo(json.dumps(results))


def variety_run(seed: int, fingers: int, impressions: int, condition: str, root: Path | None,
                cache: Path | None) -> dict:
    """Synthetic impostor rates at the shipped points; the real sets' by the same protocol when root."""
    from collections import Counter

    import numpy as np
    from rich.progress import Progress

    from fpverify.bench import synth as variety

    with Progress() as progress:
        task = progress.add_task("synthetic templates", total=fingers)
        temps, kinds = variety.synthetic_templates(seed, fingers, impressions, condition,
                                                   lambda: progress.advance(task))
    imp, gen = variety.all_pairs(temps)
    m = {"condition": condition, "fingers": fingers, "impressions": impressions,
         "classes": dict(sorted(Counter(kinds).items())),
         "extraction_failures": sum(t is None for row in temps for t in row),
         "impostor_comparisons": len(imp), "genuine_comparisons": len(gen),
         "impostor_median": float(np.median(imp)), "genuine_median": float(np.median(gen)),
         "synthetic": variety.point_rates(imp, gen)}
    if root is not None:
        r_imp, r_gen, names = variety.real_scores(root, condition, cache)
        m.update(real_sets=names, real_impostor_median=float(np.median(r_imp)),
                 real_genuine_median=float(np.median(r_gen)), real=variety.point_rates(r_imp, r_gen))
        m["versus_real"] = variety.against_real(m["synthetic"], m["real"])
    return m


def bench_sensor_download(
    out: Path = typer.Option(..., help="Folder for results.json and report.md"),
    captures: int = typer.Option(20, min=1),
) -> None:
    """Image download through the simulated sensor: in-memory decode vs pyfingerprint's PNG file."""
    import numpy as np

    from fpverify.edge.sensor.driver import SensorDriver
    from fpverify.edge.sensor.simulator import SimulatedSensor

    out.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 256, (288, 256), dtype=np.uint8)
    timings: dict[str, list[float]] = {"in_memory": [], "png_file": []}
    with SimulatedSensor() as sim:
        sim.place_finger(image)
        drivers = {
            "in_memory": SensorDriver(sim.path, in_memory=True),
            "png_file": SensorDriver(sim.path, in_memory=False),
        }
        for drv in drivers.values():
            drv.open()
        for _ in range(captures):  # interleaved so both see the same machine load
            for name, drv in drivers.items():
                t0 = time.perf_counter()
                got = drv.capture(wait_s=2)
                timings[name].append(time.perf_counter() - t0)
                if not (got == (image >> 4) * 17).all():
                    raise RuntimeError(f"{name} download differs from the source image")
        for drv in drivers.values():
            drv.close()
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    results = {
        "captures": captures,
        "in_memory_ms_median": round(med["in_memory"], 2),
        "png_file_ms_median": round(med["png_file"], 2),
        "speedup": round(med["png_file"] / med["in_memory"], 2),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(
        "# Sensor image download: in memory vs PNG file\n\n"
        f"{captures} captures each (read image + download 256x288 at 4 bpp) from the simulated sensor on a pty,"
        " no pacing, interleaved.\n\n"
        f"- in-memory (library packet functions + numpy decode): {results['in_memory_ms_median']} ms median\n"
        f"- pyfingerprint downloadImage to a temporary PNG, read back: {results['png_file_ms_median']} ms median\n"
        f"- ratio: {results['speedup']}x\n\n"
        "At a real 57600 baud the line itself takes ~6.4 s per image; the decode difference matters for CPU"
        " on the Raspberry Pi and for not writing biometric images to disk.\n"
    )
    typer.echo(json.dumps(results))
