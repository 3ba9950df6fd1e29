"""Config loading, the shipped example files, and the `fpverify edge` commands that need no sensor."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cache import Store, new_key, parse_key
from edge.config import ConfigError, load_config
from fpverify.cli import app
from tests.edge.helpers import write_config, write_key

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_cfg"
runner = CliRunner()


def test_example_config_is_valid():
    cfg = load_config(FIRMWARE / "edge.example.toml")
    assert cfg.station.device_id == "desk-reg-01"
    assert cfg.mqtt.version == "5" and cfg.mqtt.ca_file and cfg.mqtt.cert_file
    assert cfg.cache.key.credential == "fpverify-cache-key"
    assert cfg.sensor.port == "/dev/fpsensor"


def test_systemd_unit_restarts_and_loads_the_key_credential():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(FIRMWARE / "fpverify-edge.service")
    svc = unit["Service"]
    assert svc["Restart"] == "on-failure"
    text = (FIRMWARE / "fpverify-edge.service").read_text()
    assert "LoadCredential=fpverify-cache-key:" in text
    cfg = load_config(FIRMWARE / "edge.example.toml")
    assert cfg.cache.key.credential in text and "--config /etc/fpverify/edge.toml" in svc["ExecStart"]


def test_udev_rule_names_the_sensor():
    rules = [ln for ln in (FIRMWARE / "99-fpsensor.rules").read_text().splitlines() if ln and not ln.startswith("#")]
    assert rules and all('SYMLINK+="fpsensor"' in ln for ln in rules)


@pytest.mark.parametrize("text, where", [
    ('[station]\nsite_id = "s"\n', "station.device_id"),
    ('[station]\ndevice_id = "a/b"\nsite_id = "s"\n', "station.device_id"),
    ('[station]\ndevice_id = "d"\nsite_id = "s"\n[mqtt]\nversion = "4"\n', "mqtt.version"),
    ('[station]\ndevice_id = "d"\nsite_id = "s"\ntypo = 1\n', "station.typo"),
    ('[station]\ndevice_id = "d"\nsite_id = "s"\n[mqtt]\ncert_file = "c.pem"\nkey_file = "k.pem"\n', "ca_file"),
    ("[station\n", "not valid TOML"),
])
def test_bad_config_names_the_problem(tmp_path, text, where):
    p = tmp_path / "edge.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(p)


def test_relative_paths_follow_the_config_file(tmp_path):
    cfg = load_config(write_config(tmp_path / "st"))
    assert cfg.cache.path == tmp_path / "st" / "station.db"
    assert cfg.cache.key.file == tmp_path / "st" / "cache.key"


def test_keygen_status_and_wipe(tmp_path):
    key_path = tmp_path / "k"
    res = runner.invoke(app, ["edge", "keygen", "--out", str(key_path)])
    assert res.exit_code == 0, res.output
    assert oct(key_path.stat().st_mode & 0o777) == oct(0o600) and len(parse_key(key_path.read_bytes())) == 32
    assert runner.invoke(app, ["edge", "keygen", "--out", str(key_path)]).exit_code == 2  # never overwrites

    cfg_path = write_config(tmp_path / "st")
    cfg = load_config(cfg_path)
    res = runner.invoke(app, ["edge", "status", "--config", str(cfg_path)])
    assert res.exit_code == 2 and "no station cache" in res.output  # status never creates a store
    Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())).close()
    res = runner.invoke(app, ["edge", "status", "--config", str(cfg_path)])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["schema_version"] == 2 and info["outbox_pending"] == 0 and info["device_id"] == "desk-01"

    write_key(tmp_path / "st" / "cache.key", new_key())  # someone replaced the key
    before = cfg.cache.path.read_bytes()
    res = runner.invoke(app, ["edge", "status", "--config", str(cfg_path)])
    assert res.exit_code == 2 and "wrong key" in res.output
    assert cfg.cache.path.read_bytes() == before

    res = runner.invoke(app, ["edge", "wipe", "--config", str(cfg_path), "--yes"])
    assert res.exit_code == 0 and not cfg.cache.path.exists()


def test_world_readable_key_is_refused(tmp_path):
    cfg_path = write_config(tmp_path / "st")
    os.chmod(tmp_path / "st" / "cache.key", 0o644)
    res = runner.invoke(app, ["edge", "status", "--config", str(cfg_path)])
    assert res.exit_code == 2 and "chmod 600" in res.output
