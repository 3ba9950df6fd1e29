"""firmware_cfg/install-station.sh into a scratch root: the system commands it calls are recorded by
stand-ins on PATH; the files it installs, their modes, the kiosk and HIS sections it adds (and the
config still loads), and a second run that changes nothing it should keep."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from fpverify.edge.config import load_config
from tests.helpers import ROOT

SCRIPT = ROOT / "firmware_cfg" / "install-station.sh"
STANDINS = {
    "useradd": "",
    "chown": "",
    "systemctl": "",
    "udevadm": "",
    "id": "exit 1",
    "getent": 'echo "kiosk:x:1000:1000::/home/kiosk:/bin/bash"',
    # python3 -m venv DIR: a venv whose pip and fpverify only log what they were asked
    "python3": 'mkdir -p "$3/bin"; for t in pip fpverify; do printf \'#!/bin/sh\\necho %s "$@" >> "$LOG"\\n\' $t '
    '> "$3/bin/$t"; chmod +x "$3/bin/$t"; done',
}


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STANDINS.items():
        (bin_dir / name).write_text(f'#!/bin/sh\necho {name} "$@" >> "$LOG"\n{body}\n')
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "ROOT": str(tmp / "root"),
        "LOG": str(tmp / "log"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    return subprocess.run(["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def bundle(tmp: Path) -> Path:
    b = tmp / "bundle"
    b.mkdir()
    (b / "edge.toml").write_text(
        '[station]\ndevice_id = "desk-a"\nsite_id = "hosp-a"\n\n'
        '[cache]\nkey = { credential = "fpverify-cache-key", file = "cache.key" }\n'
    )
    for name in ("ca.pem", "device.crt", "device.key", "cache.key", "device.token"):
        (b / name).write_text(name + "\n")
    return b


def test_install_into_a_scratch_root(tmp_path):
    b = bundle(tmp_path)
    r = run(
        tmp_path,
        "--bundle",
        str(b),
        "--wheels",
        "/media/wheels",
        "--kiosk-user",
        "kiosk",
        "--his-host",
        "192.168.10.21",
    )
    assert r.returncode == 0, r.stderr
    root, log = tmp_path / "root", (tmp_path / "log").read_text()
    assert "useradd --system" in log and "--groups dialout fpverify" in log
    assert (
        "pip install --upgrade --only-binary=:all: --no-index --find-links /media/wheels fpverify[edge]"
        in log
    )
    assert "systemctl enable --now fpverify-edge.service" in log
    etc = root / "etc" / "fpverify"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    for secret in ("device.key", "cache.key", "device.token", "his.token"):
        assert stat.S_IMODE((etc / secret).stat().st_mode) == 0o600, secret
    assert len((etc / "his.token").read_text().strip()) >= 16
    cfg = load_config(etc / "edge.toml")
    assert cfg.kiosk.enabled and cfg.his.enabled and cfg.his.host == "192.168.10.21"
    units = root / "etc" / "systemd" / "system"
    assert (units / "fpverify-edge.service.d" / "kiosk.conf").is_file()
    home = root / "home" / "kiosk" / ".config"
    assert (home / "systemd" / "user" / "fpverify-kiosk.service").is_file()
    assert "fpverify-kiosk.service" in (home / "labwc" / "autostart").read_text()

    token = (etc / "his.token").read_text()
    autostart = (home / "labwc" / "autostart").read_text()
    again = run(tmp_path, "--bundle", str(b), "--wheels", "/media/wheels", "--kiosk-user", "kiosk")
    assert again.returncode == 0, again.stderr
    assert (etc / "his.token").read_text() == token  # the HIS keeps its token
    assert (etc / "edge.toml").read_text().count("[kiosk]") == 1
    assert (home / "labwc" / "autostart").read_text() == autostart  # not appended twice


def test_bad_arguments_are_clear(tmp_path):
    r = run(tmp_path)
    assert r.returncode == 2 and "--bundle DIR is required" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(tmp_path, "--bundle", str(empty))
    assert r.returncode == 2 and "has no edge.toml" in r.stderr
    r = run(tmp_path, "--bundle", str(bundle(tmp_path)), "--his-host", "1.2.3.4; rm -rf /")
    assert r.returncode == 2 and "--his-host" in r.stderr
    assert not (tmp_path / "root").exists()  # nothing installed
