"""Config loading, the shipped example files, and the `fpverify edge` commands that need no sensor."""

from __future__ import annotations

import configparser
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpverify.cli import app
from fpverify.edge.cache import Store, new_key, parse_key
from fpverify.edge.config import ConfigError, load_config
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
    assert info["schema_version"] == 4 and info["outbox_pending"] == 0 and info["device_id"] == "desk-01"

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


def test_verify_command_records_and_delivers(tmp_path, mosquitto):
    from fpverify.edge.cache import CardStatus
    from tests.edge.helpers import Subscriber, feed

    cfg_path = write_config(tmp_path / "st", mqtt_port=mosquitto.port)
    cfg = load_config(cfg_path)
    with Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())) as store:
        store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
    sub = Subscriber(mosquitto.host, mosquitto.port)
    assert sub.subscribed.wait(10)
    try:
        res = runner.invoke(app, ["edge", "verify", "--config", str(cfg_path), "--card", "BLOCKED1",
                                  "--operator", "nurse1"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output.strip().splitlines()[-1])
        assert out["result"]["outcome"] == "card_blocked" and out["delivered"] is True
        assert "retain the card" in out["message"]
        assert sub.wait_distinct(1, 20) and sub.distinct() == {out["result"]["result_id"]}
        assert sub.results[0].operator_id == "nurse1"
    finally:
        sub.close()


def test_card_socket_answers_each_card(tmp_path):
    import socket
    import threading

    from fpverify.edge.cache import CardStatus
    from fpverify.edge.station import CardSocket, Station
    from tests.edge.helpers import feed

    cfg = load_config(write_config(tmp_path / "st"))
    station = Station(cfg, sensor=None, engine=None, mqtt=False, sync=False)
    station.store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
    sock_path = tmp_path / "card.sock"
    server = CardSocket(sock_path, station.handle_card)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(str(sock_path))
            c.sendall(b"BLOCKED1\nNOBODY99\nx\n")  # a reader service may send several at once
            f = c.makefile("r")
            answers = [json.loads(f.readline()) for _ in range(3)]
        assert [a.get("outcome") for a in answers[:2]] == ["card_blocked", "not_enrolled"]
        assert answers[2] == {"error": "card not read"}
        assert station.outbox.count() == 2
        # the socket appears under its name only once listening (renamed into place), group-writable
        assert sock_path.stat().st_mode & 0o777 == 0o660 and not list(tmp_path.glob(".card.sock.*"))
    finally:
        server.stop()
        thread.join(5)
        station.stop()


def test_full_store_refuses_the_result_and_loses_nothing(tmp_path):
    """A full disk (here: SQLite's max_page_count reached) gives a clear error; earlier results stay."""
    from fpverify.edge.cache import CardStatus
    from fpverify.edge.station import Station
    from fpverify.edge.workflow import RecordError
    from tests.edge.helpers import feed

    cfg = load_config(write_config(tmp_path / "st"))
    station = Station(cfg, sensor=None, engine=None, mqtt=False, sync=False)
    try:
        station.store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
        first = station.verifier.verify("BLOCKED1")
        pages = station.store.query("PRAGMA page_count")[0][0]
        station.store.query(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(RecordError, match="full"):
            for _ in range(200):  # fills the last free pages, then the store is full
                station.verifier.verify("BLOCKED1")
        assert station.handle_card("BLOCKED1") is None  # the desk is told; the station keeps running
        ids = station.outbox.history_ids()
        assert ids[0] == str(first.result_id) and station.outbox.count() == len(ids)
        station.store.query(f"PRAGMA max_page_count = {pages * 100}")  # space again
        assert station.handle_card("BLOCKED1") is not None
    finally:
        station.stop()
