"""`fpverify edge run` with [kiosk] and [his] enabled, as systemd starts it: the page and the HIS API
come up, a bad HIS token in the config is a clear error (exit 2), SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from fpverify.services import free_port
from tests.edge.helpers import write_config
from tests.edge.kiosk.helpers import HIS_TOKEN


def station_config(folder, token: str = HIS_TOKEN):
    kiosk_port, his_port = free_port(), free_port()
    cfg = write_config(folder)
    (folder / "his.token").write_text(token + "\n")
    os.chmod(folder / "his.token", 0o600)
    cfg.write_text(
        cfg.read_text() + f"\n[kiosk]\nenabled = true\nport = {kiosk_port}\n"
        f'[his]\nenabled = true\nport = {his_port}\ntoken = {{ file = "his.token" }}\n'
    )
    return cfg, kiosk_port, his_port


def start(cfg):
    return subprocess.Popen(
        [sys.executable, "-m", "fpverify", "edge", "run", "--config", str(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_serves_the_page_and_the_his_api_then_stops_on_sigterm(tmp_path):
    cfg, kiosk_port, his_port = station_config(tmp_path / "st")
    proc = start(cfg)
    try:
        deadline = time.monotonic() + 120
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{kiosk_port}/kiosk", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert page is not None and page.status_code == 200, (
            proc.stderr.read() if proc.poll() is not None else ""
        )
        assert 'lang="zh-CN"' in page.text and "身份核验" in page.text
        his = f"http://127.0.0.1:{his_port}/his/v1/status"
        assert httpx.get(his, timeout=5).status_code == 401
        status = httpx.get(his, headers={"Authorization": f"Bearer {HIS_TOKEN}"}, timeout=5).json()
        assert status["busy"] is False and status["online"] is None and status["pending_results"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]


def test_a_short_his_token_is_a_clear_config_error(tmp_path):
    cfg, _, _ = station_config(tmp_path / "st", token="short")
    proc = start(cfg)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "error: the HIS token must have at least 16 characters" in err
    assert "Traceback" not in err


def test_verify_command_refuses_a_misread_card_before_opening_anything(tmp_path):
    from typer.testing import CliRunner

    from fpverify.cli import app

    cfg, _, _ = station_config(tmp_path / "st")
    res = CliRunner().invoke(app, ["edge", "verify", "--config", str(cfg), "--card", "11010519491231002"])
    assert res.exit_code == 2 and "card not read" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "st" / "station.db").exists()  # nothing opened, nothing recorded
