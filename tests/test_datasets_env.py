"""Every command that reads the FVC sets finds them from any working folder (FPVERIFY_DATASETS, else
shared/datasets beside the project folder), and says how to point at them when they are not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fpverify.bench import datasets
from tests.helpers import ROOT, datasets_path

# (command line, needs) for every command with a --datasets option; `needs` is a module it imports first.
READERS = [
    (["bench", "accuracy"], None),
    (["bench", "calibrate"], None),
    (["bench", "desk"], None),
    (["bench", "search"], None),
    (["bench", "teacher"], None),
    (["bench", "speed"], None),
    (["bench", "synth"], None),
    (["train", "extractor"], "torch"),
    (["train", "quantize"], None),
]
# options a command needs besides --datasets and --out
EXTRA = {("train", "quantize"): ["--model", str(ROOT / "matcher" / "models" / "minutiae-student.onnx")]}


def _fpverify(args: list[str], cwd, env_datasets: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FPVERIFY_DATASETS"}
    if env_datasets is not None:
        env["FPVERIFY_DATASETS"] = env_datasets
    return subprocess.run(
        [sys.executable, "-m", "fpverify", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_every_dataset_command_is_covered():
    """A new command with a --datasets option must be added to READERS above."""
    from typer.main import get_command

    from fpverify.cli import app

    found = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        if any(p.name == "datasets" for p in getattr(cmd, "params", [])):
            found.append(path)

    walk(get_command(app), [])
    assert sorted(found) == sorted(c for c, _ in READERS)


def test_default_is_beside_the_project_not_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("FPVERIFY_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert datasets.default_root() == ROOT.parent / "shared" / "datasets"
    monkeypatch.setenv("FPVERIFY_DATASETS", str(tmp_path / "sets"))
    assert datasets.default_root() == tmp_path / "sets"


@pytest.mark.parametrize(("args", "needs"), READERS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_missing_sets_named_with_the_setting(tmp_path, args, needs):
    if needs:
        pytest.importorskip(needs)
    absent = tmp_path / "no-such-folder"
    r = _fpverify(
        [*args, *EXTRA.get(tuple(args), []), "--out", str(tmp_path / "out.onnx" if args[0] == "train" else tmp_path / "out")],
        cwd=tmp_path,
        env_datasets=str(absent),
    )
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "FPVERIFY_DATASETS" in r.stderr and str(absent) in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.datasets
def test_bench_run_from_another_folder_finds_the_sets(tmp_path):
    if not datasets.available_sets(datasets_path()):
        pytest.skip(f"FVC datasets not found at {datasets_path()} (set FPVERIFY_DATASETS)")
    if os.environ.get("FPVERIFY_DATASETS"):
        pytest.skip("FPVERIFY_DATASETS is set: this test checks the default location")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _fpverify(
        ["bench", "speed", "--out", "out", "--images-per-set", "2", "--gallery-size", "30", "--probes", "2"],
        cwd=elsewhere,
        env_datasets=None,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((elsewhere / "out" / "results.json").read_text())
    assert res["gallery_size"] == 30 and res["extract_ms_median"] > 0
    n = len(datasets.available_sets(datasets_path()))
    assert f"from each of {n} FVC sets" in (elsewhere / "out" / "report.md").read_text()
