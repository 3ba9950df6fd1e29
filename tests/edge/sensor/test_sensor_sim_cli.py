"""`fpverify sensor-sim` as a user runs it: a separate process, the pty path on its first line."""

import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pyfingerprint.pyfingerprint import PyFingerprint

from fpverify.edge.sensor.driver import SensorDriver, SensorError

pytestmark = pytest.mark.timeout(90)


def test_sensor_sim_serves_folder_in_name_order(tmp_path):
    rng = np.random.default_rng(3)
    images = {name: rng.integers(0, 256, (288, 256), dtype=np.uint8) for name in ("102_1.png", "101_2.png", "101_1.png")}
    for name, image in images.items():
        Image.fromarray(image).save(tmp_path / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fpverify", "sensor-sim", "--images", str(tmp_path), "--password", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.stderr.read() if proc.poll() is not None else "")
        with pytest.raises(SensorError, match="password"):
            SensorDriver(path, password=8, timeout_s=2).open()
        f = PyFingerprint(path, password=7)
        assert f.verifyPassword()
        with SensorDriver(path, password=7, timeout_s=2) as drv:
            for name in sorted(images):  # 101_1, 101_2, 102_1, then around again
                assert (drv.capture(wait_s=2) == (images[name] >> 4) * 17).all(), name
            assert (drv.capture(wait_s=2) == (images["101_1.png"] >> 4) * 17).all()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_sensor_sim_rejects_empty_folder(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fpverify", "sensor-sim", "--images", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "no images" in run.stderr
