"""The kiosk's device files agree with the code: the browser opens the page where the station serves
it, the drop-in loads the credential the HIS section reads, the units parse, the example config loads."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fpverify.edge.config import HisSection, KioskSection, load_config
from tests.helpers import ROOT

FW = ROOT / "firmware_cfg"


def test_browser_unit_opens_the_station_page_in_kiosk_mode():
    unit = (FW / "kiosk" / "fpverify-kiosk.service").read_text()
    k = KioskSection()
    url = f"http://{k.host}:{k.port}/kiosk"
    assert unit.count(url) == 2  # waited for, then opened
    for flag in (
        "--kiosk",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=zh-CN",
        "--no-first-run",
    ):
        assert flag in unit
    assert "fpverify-kiosk.service" in (FW / "kiosk" / "autostart").read_text()
    assert "fpverify-kiosk.service" in (FW / "kiosk" / "fpverify-kiosk.desktop").read_text()


def test_station_web_drop_in_loads_the_his_token():
    conf = (FW / "fpverify-edge.service.d" / "kiosk.conf").read_text()
    assert f"LoadCredential={HisSection().token.credential}:" in conf
    assert "StandardInput=null" in conf


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_parse(tmp_path):
    unit = FW / "kiosk" / "fpverify-kiosk.service"
    r = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (r.stdout + r.stderr).splitlines()
        if "fpverify-kiosk.service" in line
        and "not executable" not in line
        and "not found" not in line.lower()
    ]
    assert not problems, problems


def test_example_config_documents_kiosk_and_his():
    cfg = load_config(FW / "edge.example.toml")
    assert cfg.kiosk == KioskSection() and cfg.his.token.credential == "fpverify-his-token"
