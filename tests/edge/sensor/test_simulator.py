"""pyfingerprint (unmodified) and the station driver against the simulated sensor on a real pty."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from PIL import Image
from pyfingerprint.pyfingerprint import PyFingerprint

from fpverify.edge.sensor import protocol as p
from fpverify.edge.sensor.driver import NoFinger, SensorDriver, SensorError, SensorTimeout
from fpverify.edge.sensor.simulator import SimulatedSensor, fit_to_sensor

pytestmark = pytest.mark.timeout(60)


def finger_like(seed=0, shape=(300, 260)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ridges = 128 + 100 * np.sin(xx * 0.6 + yy * 0.2 + rng.uniform(0, 6))
    return np.clip(ridges + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)


def expected(image):
    return (fit_to_sensor(image) >> 4) * 17


@pytest.fixture
def sim():
    sensor = SimulatedSensor()
    sensor.start()
    yield sensor
    sensor.stop()


@pytest.fixture
def driver(sim):
    drv = SensorDriver(sim.path, timeout_s=1.0)
    drv.open()
    yield drv
    drv.close()


def call_within(fn, limit_s):
    """Run fn in a thread; fail (instead of hanging the suite) if it does not return within limit_s."""
    box = {}

    def run():
        start = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: B036 - handed back to the test
            box["error"] = exc
        box["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"call still blocked after {limit_s} s"
    return box


@pytest.mark.parametrize("packet_size", [32, 128, 256])
def test_pyfingerprint_download_image_is_pixel_exact(tmp_path, packet_size):
    image = finger_like(packet_size)
    with SimulatedSensor(packet_size=packet_size) as sim:
        f = PyFingerprint(sim.path)
        assert f.verifyPassword() is True
        assert f.getMaxPacketSize() == packet_size
        assert f.readImage() is False  # nothing on the platen yet
        sim.place_finger(image)
        assert f.readImage() is True
        f.downloadImage(str(tmp_path / "img.png"))
        got = np.array(Image.open(tmp_path / "img.png"))
    assert got.shape == (288, 256)
    assert (got == expected(image)).all()


@pytest.mark.parametrize("in_memory", [True, False])
def test_driver_capture_matches_source(sim, in_memory):
    image = finger_like(7, shape=(400, 200))  # taller and narrower: cropped and padded
    drv = SensorDriver(sim.path, timeout_s=1.0, in_memory=in_memory)
    with drv:
        sim.place_finger(image)
        got = drv.capture(wait_s=2)
    assert got.dtype == np.uint8 and got.shape == (288, 256)
    assert (got == expected(image)).all()
    assert (got[:, :28] == 255).all()  # padding is white, like an empty platen


def test_system_commands(sim, driver):
    params = driver.system_parameters()
    assert params[2] == 1000 and params[4] == 0xFFFFFFFF and params[5] == 2
    assert driver.template_count() == 0
    assert driver.finger_present() is False
    sim.place_finger(finger_like(1))
    assert driver.finger_present() is True
    assert driver.convert_image() is True
    sim.place_finger(np.full((288, 256), 200, np.uint8))  # blank platen: nothing to convert
    assert driver.finger_present() is True
    with pytest.raises(SensorError, match="messy"):
        driver.convert_image()


def test_template_index_and_unknown_instruction(sim):
    f = PyFingerprint(sim.path)
    assert f.verifyPassword()
    assert f.getTemplateIndex(0) == [False] * 256
    # an instruction the sensor does not know gets an error ack, not silence
    port = serial.Serial(sim.path, timeout=2)
    port.write(p.encode(p.Packet(p.COMMAND, b"\x77\x01")))
    reply = p.decode(port.read(12))
    port.close()
    assert reply.kind == p.ACK and reply.payload == bytes((p.ERR_RECEIVE,))


def test_images_presented_in_order_one_per_read(tmp_path):
    images = [finger_like(s) for s in range(3)]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"10{i}_1.png")
        Image.fromarray(image).save(paths[-1])
    with SimulatedSensor(images=paths) as sim, SensorDriver(sim.path, timeout_s=1.0) as drv:
        for image in images:
            assert (drv.capture(wait_s=1) == expected(image)).all()
        assert drv.finger_present() is False  # the queue is exhausted


def test_wrong_password():
    with SimulatedSensor(password=0x1234) as sim:
        f = PyFingerprint(sim.path, password=0x4321)
        assert f.verifyPassword() is False
        drv = SensorDriver(sim.path, password=0x4321, timeout_s=1.0)
        with pytest.raises(SensorError, match="password"):
            drv.open()
        assert not drv.is_open
        # before a successful password check the sensor refuses commands
        with pytest.raises(Exception, match="0x21"):
            f.readImage()
        with SensorDriver(sim.path, password=0x1234, timeout_s=1.0) as good:
            assert good.finger_present() is False
            sim.inject("wrong_password")
            with pytest.raises(SensorError, match="password"):
                good.reconnect()


def test_pyfingerprint_sees_bad_checksum_and_garbage(sim):
    f = PyFingerprint(sim.path)
    assert f.verifyPassword()
    sim.inject("bad_checksum")
    with pytest.raises(Exception, match="checksum"):
        f.readImage()
    time.sleep(0.2)
    sim.inject("garbage")
    with pytest.raises(Exception, match="header"):
        f.readImage()


@pytest.mark.parametrize(
    "fault,message",
    [
        ("bad_checksum", "checksum"),
        ("garbage", "header"),
        ("truncated", "truncated packet"),
        ("wrong_address", "address"),
    ],
)
def test_driver_reports_faults_clearly_then_recovers(sim, driver, fault, message):
    sim.place_finger(finger_like(3))
    sim.inject(fault)
    box = call_within(driver.finger_present, 10)
    assert isinstance(box.get("error"), SensorError)
    assert message in str(box["error"])
    assert driver.finger_present() is True  # the next exchange works again
    assert (driver.download_image() == expected(finger_like(3))).all()


@pytest.mark.parametrize(
    "fault,after,message",
    [
        ("silence", 0, "expected an ack"),  # the ack is lost, data packets follow
        ("truncated", 5, "checksum"),  # a data packet cut short runs into the next one
        ("silence", 40, "image data is 36736 bytes"),  # one data packet lost
        ("silence", 288, "silent"),  # the end packet never comes
        ("bad_checksum", 288, "checksum"),
    ],
)
def test_faults_inside_image_download(sim, driver, fault, after, message):
    image = finger_like(4)
    sim.place_finger(image)
    assert driver.finger_present()
    sim.inject(fault, 1, after=after)
    box = call_within(driver.download_image, 10)
    assert isinstance(box.get("error"), SensorError)
    assert message in str(box["error"])
    assert (driver.download_image() == expected(image)).all()


@pytest.mark.slow
@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout_s", [0.5, 2.0])
def test_watchdog_catches_silence_within_timeout(sim, timeout_s):
    drv = SensorDriver(sim.path, timeout_s=timeout_s)
    drv.open()
    sim.go_silent(60)
    box = call_within(drv.finger_present, timeout_s + 5)
    assert isinstance(box.get("error"), SensorTimeout)
    assert "silent" in str(box["error"])
    assert timeout_s * 0.9 <= box["elapsed"] <= timeout_s + 1.5
    box = call_within(lambda: drv.capture(wait_s=30), timeout_s + 5)  # capture does not keep polling
    assert isinstance(box.get("error"), SensorTimeout)
    sim.go_silent(0)
    drv.reconnect()
    assert drv.finger_present() is False
    drv.close()


def test_unplugged_during_open(sim):
    sim.go_silent(60)
    drv = SensorDriver(sim.path, timeout_s=0.5)
    box = call_within(drv.open, 6)
    assert isinstance(box.get("error"), SensorTimeout)
    assert not drv.is_open


def test_no_finger_within_wait(driver):
    box = call_within(lambda: driver.capture(wait_s=0.5), 10)
    assert isinstance(box.get("error"), NoFinger)
    assert isinstance(box["error"], TimeoutError)


def test_missing_port_is_a_clear_error(tmp_path):
    with pytest.raises(SensorError, match="cannot open"):
        SensorDriver(str(tmp_path / "ttyNONE")).open()


def test_bad_finger_image_is_rejected(sim):
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((10, 10), np.float32), np.zeros(10, np.uint8)):
        with pytest.raises(ValueError):
            sim.place_finger(bad)
    with pytest.raises(ValueError, match="unknown fault"):
        sim.inject("melted")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_real_time_pacing_at_115200():
    image = finger_like(5)
    with SimulatedSensor(baud=115200) as sim, SensorDriver(sim.path, baud=115200, timeout_s=1.0) as drv:
        sim.place_finger(image)
        start = time.monotonic()
        got = drv.capture(wait_s=2)
        elapsed = time.monotonic() - start
    assert (got == expected(image)).all()
    # 36864 image bytes plus framing at 10 bits per byte cannot arrive faster than the line allows
    assert elapsed >= p.IMAGE_BYTES * 10 / 115200 * 0.95


def test_pty_path_exists_while_running():
    sim = SimulatedSensor()
    path = sim.start()
    assert Path(path).exists()
    sim.stop()


def test_driver_with_other_module_address_is_refused(sim):
    f = PyFingerprint(sim.path, address=0x12345678)
    with pytest.raises(Exception, match="address is wrong"):
        f.verifyPassword()
    drv = SensorDriver(sim.path, address=0x12345678, timeout_s=1.0)
    with pytest.raises(SensorError, match="address"):
        drv.open()
    assert not drv.is_open
