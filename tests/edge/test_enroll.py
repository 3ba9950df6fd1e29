"""Enrollment mode: login, consent, >= 3 impressions per finger through the simulated sensor, upload."""

from __future__ import annotations

import pytest

from fpverify.edge.config import load_config
from fpverify.edge.enroll import Enroller, EnrollError
from fpverify.edge.sensor.driver import SensorDriver
from fpverify.edge.sensor.simulator import SimulatedSensor
from fpverify.edge.wire import EnrollmentUpload
from fpverify.edge.workflow import Engine
from tests.edge.helpers import write_config
from tests.edge.registry_stub_server import RegistryServer


@pytest.fixture
def registry():
    server = RegistryServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def impressions():
    from fpverify.edge.sensor.simulator import fit_to_sensor
    from fpverify.matcher import synth

    return {seed: [fit_to_sensor(synth.impression(synth.generate_finger(seed), k)[0]) for k in range(3)]
            for seed in (38, 36, 45)}


def make(tmp_path, registry, sim):
    cfg = load_config(write_config(tmp_path / "st", registry_url=registry.url, sensor_port=sim.path,
                                   extra="capture_wait_s = 5"))
    driver = SensorDriver(sim.path, timeout_s=1.0)
    driver.open()
    return cfg, Enroller(cfg, Engine.for_station(cfg.station), driver, min_quality=20), driver


def test_enrollment_uploads_templates_with_consent(tmp_path, registry, impressions):
    registry.enroll = (201, b'{"status": "enrolled", "card_number": "CARD0007", "template_ids": ["a"], '
                            b'"feed_version": 9}')
    with SimulatedSensor(images=impressions[38] + impressions[36]) as sim:
        cfg, enroller, driver = make(tmp_path, registry, sim)
        try:
            enroller.login("nurse1", "pw")
            answer = enroller.enroll("CARD0007", [2, 7], impressions=3)
        finally:
            driver.close()
    assert answer["status"] == "enrolled"
    login, upload = registry.requests
    assert login["path"] == "/api/v1/auth/login" and login["body"] == {"username": "nurse1", "password": "pw"}
    assert upload["auth"] == "Bearer op-token"
    body = EnrollmentUpload.model_validate(upload["body"])
    assert body.card_number == "CARD0007" and body.device_id == cfg.station.device_id
    assert body.consent.witnessed_by == "nurse1" and body.operator_id == "nurse1"
    assert [f.finger for f in body.fingers] == [2, 7] and all(len(f.templates) == 3 for f in body.fingers)
    # templates only: every uploaded blob parses as a matcher template and is far smaller than an image
    from fpverify import matcher
    for f in body.fingers:
        for t in f.templates:
            matcher.Template.from_bytes(t)
            assert len(t) < 288 * 256 // 4


def test_mixed_fingers_are_refused_before_upload(tmp_path, registry, impressions):
    mixed = [impressions[38][0], impressions[45][0], impressions[36][1]]  # three different fingers
    with SimulatedSensor(images=mixed) as sim:
        _, enroller, driver = make(tmp_path, registry, sim)
        try:
            enroller.login("nurse1", "pw")
            with pytest.raises(EnrollError, match="does not match the others"):
                enroller.enroll("CARD0007", [2], impressions=3)
        finally:
            driver.close()
    assert [r["path"] for r in registry.requests] == ["/api/v1/auth/login"]  # nothing uploaded


def test_registry_refusals_are_clear(tmp_path, registry, impressions):
    with SimulatedSensor(images=impressions[38] * 2) as sim:
        _, enroller, driver = make(tmp_path, registry, sim)
        try:
            registry.login = (401, b'{"detail": "bad credentials"}')
            with pytest.raises(EnrollError, match="login refused"):
                enroller.login("nurse1", "wrong")
            registry.login = (200, b'{"access_token": "t", "token_type": "bearer", "role": "enroller"}')
            enroller.login("nurse1", "pw")
            registry.enroll = (409, b'{"detail": "no consent on file"}')
            with pytest.raises(EnrollError, match="no consent on file"):
                enroller.enroll("CARD0007", [2])
        finally:
            driver.close()
