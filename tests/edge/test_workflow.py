"""Desk checks end to end: simulated sensor on a pty driven by pyfingerprint, the real matcher,
the encrypted cache, the outbox and a real Mosquitto."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fpverify.edge.config import load_config
from fpverify.edge.station import Station
from fpverify.edge.wire import Outcome
from fpverify.edge.workflow import MESSAGES
from tests.edge.helpers import (
    DELEGATE,
    HOLDER,
    STRANGER,
    Subscriber,
    enrolled_feed,
    write_config,
)


class ListDisplay:
    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.shown: list[tuple[str, str]] = []

    def show(self, prompt) -> None:
        self.prompts.append(prompt.text())

    def outcome(self, result, message: str) -> None:
        self.shown.append((result.outcome.value, message))


def test_desk_checks_through_the_simulated_sensor(tmp_path, mosquitto, fingers):
    from fpverify.edge.sensor.simulator import SimulatedSensor

    with SimulatedSensor() as sim:
        cfg = load_config(write_config(tmp_path / "st", mqtt_port=mosquitto.port, sensor_port=sim.path,
                                       extra="capture_wait_s = 5"))
        display = ListDisplay()
        sub = Subscriber(mosquitto.host, mosquitto.port)
        assert sub.subscribed.wait(10)
        station = Station(cfg, display=display, sync=False)
        station.store.apply_feed(enrolled_feed(fingers))
        station.start()
        try:
            cases = [("CARD0042", fingers[HOLDER][3], Outcome.MATCH),
                     ("CARD0042", fingers[STRANGER][1], Outcome.NO_MATCH),
                     ("CARD0042", fingers[DELEGATE][3], Outcome.DELEGATE_MATCH),
                     ("CARD0043", None, Outcome.CARD_BLOCKED),
                     ("CARD0099", None, Outcome.NOT_ENROLLED)]
            results = []
            for card, image, expected in cases:
                if image is not None:
                    sim.place_finger(image)
                r = station.handle_card(card + "\n")  # as the card reader types it
                sim.lift_finger()
                assert r.outcome == expected, (card, r.outcome, r.score, r.threshold)
                results.append(r)
            assert results[0].score >= results[0].threshold and results[0].finger == 2
            assert results[1].score < results[1].threshold
            assert results[2].delegate_id == "son-01" and results[2].finger == 7
            assert display.shown[1] == ("no_match", MESSAGES[Outcome.NO_MATCH])
            assert "retain the card and call the insurance office" in display.shown[1][1]
            assert sub.wait_distinct(len(cases), 30)
            assert sub.distinct() == {str(r.result_id) for r in results}
            assert station.handle_card("12") is None  # unreadable card: shown, nothing recorded
            assert station.outbox.history_ids() == [str(r.result_id) for r in results]
        finally:
            station.stop()
            sub.close()


@pytest.mark.slow
def test_silent_sensor_gives_sensor_error_then_recovers(tmp_path, fingers):
    from fpverify.edge.sensor.simulator import SimulatedSensor

    with SimulatedSensor() as sim:
        cfg = load_config(write_config(tmp_path / "st", sensor_port=sim.path, extra="capture_wait_s = 5"))
        station = Station(cfg, display=ListDisplay(), sync=False, mqtt=False)
        station.store.apply_feed(enrolled_feed(fingers))
        station.start()
        try:
            sim.place_finger(fingers[HOLDER][3])
            decided = (Outcome.MATCH, Outcome.NO_MATCH, Outcome.DELEGATE_MATCH)
            first = station.handle_card("CARD0042")
            assert first.outcome in decided
            sim.go_silent(4)
            t0 = time.monotonic()
            r = station.handle_card("CARD0042")
            assert r.outcome == Outcome.SENSOR_ERROR and "silent" in r.detail
            assert time.monotonic() - t0 < 15  # the watchdog bounds it: never a hang
            time.sleep(4)  # the simulated sensor is unplugged for 4 s
            again = station.handle_card("CARD0042")
            assert again.outcome in decided  # reconnected: a real capture and decision again
            # nothing lost: every check, failed or not, is in the outbox
            assert station.outbox.history_ids() == [str(x.result_id) for x in (first, r, again)]
            assert station.outbox.count() == 3
        finally:
            station.stop()


def test_poor_quality_retries_then_records(tmp_path, fingers):
    from fpverify.edge.sensor.simulator import SimulatedSensor

    rng = np.random.default_rng(0)
    smudge = (rng.random((288, 256)) * 40 + 100).astype(np.uint8)  # no ridges at all
    with SimulatedSensor() as sim:
        cfg = load_config(write_config(tmp_path / "st", sensor_port=sim.path, extra="capture_wait_s = 5"))
        display = ListDisplay()
        station = Station(cfg, display=display, sync=False, mqtt=False)
        station.store.apply_feed(enrolled_feed(fingers))
        station.start()
        try:
            sim.place_finger(smudge)
            r = station.handle_card("CARD0042")
            assert r.outcome == Outcome.POOR_QUALITY and r.attempts == cfg.station.max_attempts
            assert sum(p.startswith("Press again") for p in display.prompts) == cfg.station.max_attempts - 1
        finally:
            station.stop()


def test_verify_image_matches_without_the_serial_line(tmp_path, fingers):
    cfg = load_config(write_config(tmp_path / "st"))
    station = Station(cfg, sensor=None, sync=False, mqtt=False)
    station.store.apply_feed(enrolled_feed(fingers))
    try:
        v = station.verifier
        assert v.verify_image("CARD0042", fingers[HOLDER][3]).outcome == Outcome.MATCH
        assert v.verify_image("CARD0042", fingers[STRANGER][2]).outcome == Outcome.NO_MATCH
        assert v.verify_image("CARD0042", fingers[DELEGATE][3]).outcome == Outcome.DELEGATE_MATCH
    finally:
        station.stop()
