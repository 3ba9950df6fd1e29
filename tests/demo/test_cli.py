"""`fpverify demo` refuses bad input with a clear message before it starts anything, and its
settings change nothing in the matcher (the stations and the registry get them as settings)."""

from __future__ import annotations

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
