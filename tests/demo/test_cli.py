"""`fpverify demo` refuses bad input with a clear message before it starts anything, and its
settings change nothing in the matcher (the stations and the registry get them as settings)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpverify import matcher
from fpverify.cli import app
from fpverify.demo.settings import (
    OPERATING_POINT,
    registry_settings,
    station_config,
)


def test_unknown_broker_is_refused(tmp_path):
    r = CliRunner().invoke(app, ["demo", "--headless", "--broker", "rabbit", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2 and "auto, mosquitto or amqtt" in r.output
    assert not (tmp_path / "d").exists()


def test_a_folder_the_demo_did_not_make_is_left_alone(tmp_path):
    keep = tmp_path / "mine" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    r = CliRunner().invoke(app, ["demo", "--headless", "--data-dir", str(keep.parent)])
    assert r.exit_code == 2 and "not made by the demo" in r.output and "Traceback" not in r.output
    assert keep.read_text() == "mine"


def test_demo_settings_leave_the_matcher_alone(tmp_path):
    before = dict(matcher.THRESHOLDS)
    cfg = station_config("desk-1", "site-1", "registration", tmp_path, "/dev/null", "http://127.0.0.1:1", 1883, "5")
    assert cfg.station.threshold == OPERATING_POINT
    assert cfg.station.threshold_score is None  # the shipped point itself, raised for n as at every station
    s = registry_settings(f"sqlite:///{tmp_path / 'r.db'}", 8000, 1883, "5")
    assert s.mode == "demo" and s.duplicate_threshold == OPERATING_POINT and s.duplicate_threshold_score is None
    assert matcher.THRESHOLDS == before


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly(tmp_path):
    """Ctrl-C at a terminal signals the whole foreground process group, the broker process included:
    the demo still stops stations, registry and broker in that order, says nothing about a lost broker,
    and leaves no broker running."""
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    data = tmp_path / "demo"
    from fpverify.services import free_port

    cmd = [sys.executable, "-m", "fpverify", "demo", "--broker", "mosquitto", "--port", str(free_port()),
           "--data-dir", str(data)]
    # Ctrl-C's default action, as a terminal job has: a test run started in a script's background
    # (`pytest &`) would pass SIGINT on ignored. Reset, then exec the demo (the reset survives exec).
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", reset, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own group, as a terminal gives a job
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "-> " in line:  # a desk has decided: everything is up
                break
        assert proc.poll() is None and any("broker: Mosquitto" in x for x in lines), "".join(lines)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(lines) + out
    assert "demo stopped" in text and "Traceback" not in text
    assert "ERROR" not in text and "WARNING" not in text, text[-2000:]
    assert not _processes_naming(str(data)), "the demo left its broker running"  # its config is in there


def _processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text` (read from /proc: no procps needed)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:  # gone meanwhile
            continue
    return found
