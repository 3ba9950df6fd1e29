"""Plain helpers of the kiosk tests (fixtures are in conftest.py): the HIS token, the simulated hand,
press images, and a desk (a real Station with its kiosk page and HIS API) to start and close."""

from __future__ import annotations

import collections
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpverify.edge.config import load_config
from fpverify.edge.prompts import Displays, Prompt, Step
from tests.edge.helpers import write_config

HIS_TOKEN = "his-token-0123456789abcdef"
UNPLUG = "unplug"  # a queued "press" that pulls the sensor's cable instead


class Hand:
    """The person at the desk: at each press prompt, the next queued image goes onto the sensor."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.presses: collections.deque = collections.deque()
        self.prompts: list[Prompt] = []
        self.outcomes: list[str] = []
        self.outcome_seen = threading.Event()
        self.delay_s = (
            0.0  # a person takes a moment to put the finger down (the browser tests see the prompt)
        )

    def queue(self, *images) -> None:
        self.presses.extend(images)

    def show(self, prompt: Prompt) -> None:
        self.prompts.append(prompt)
        if prompt.step is Step.LIFT_FINGER:  # between two enrollment presses
            self.sim.lift_finger()
        if prompt.step is Step.PLACE_FINGER:
            item = self.presses.popleft() if self.presses else None
            if item is None:
                self.sim.lift_finger()
            elif isinstance(item, str) and item == UNPLUG:
                self.sim.lift_finger()
                self.sim.go_silent(3)
            elif self.delay_s:  # lift, then press again a moment later
                self.sim.lift_finger()
                threading.Timer(self.delay_s, self.sim.place_finger, args=(item,)).start()
            else:
                self.sim.place_finger(item)

    def outcome(self, result, message: str) -> None:
        self.sim.lift_finger()
        self.outcomes.append(result.outcome.value)
        self.outcome_seen.set()


def smudge() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((288, 256)) * 40 + 100).astype(np.uint8)  # no ridges: low contrast / no minutiae


def tip_only(image: np.ndarray) -> np.ndarray:
    """Only the bottom fifth of the finger touches: too small, and it sits low on the window."""
    out = np.full_like(image, 255)
    rows = image.shape[0] // 5
    out[-rows:] = image[-rows:]
    return out


@dataclass
class KioskDesk:
    station: object
    service: object
    display: object
    hand: Hand
    sim: object
    cfg: object
    folder: Path

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def his(self) -> str:
        return self.service.his_url


KIOSK_TOML = (
    "\n[kiosk]\nenabled = true\nport = 0\noutcome_hold_s = 30\n"
    '[his]\nenabled = true\nport = 0\ntoken = { file = "his.token" }\nmax_wait_s = 30\n'
)


def desk_config(folder: Path, sim_path: str, registry_url: str | None = None) -> Path:
    """A station config for the desk (write_config's, with the kiosk, the HIS API and 115200 baud)."""
    cfg_path = write_config(
        folder, sensor_port=sim_path, registry_url=registry_url, extra="capture_wait_s = 6\n"
    )
    text = cfg_path.read_text().replace("min_quality = 20", "min_quality = 40")  # the station's default gate
    cfg_path.write_text(text.replace("[sensor]", "[sensor]\nbaud = 115200") + KIOSK_TOML)
    return cfg_path


def make_desk(
    folder: Path,
    feed,
    cfg_path: Path | None = None,
    sim=None,
    mqtt: bool = False,
    registry_url: str | None = None,
) -> KioskDesk:
    """The desk from `cfg_path` (default: desk_config), the simulated sensor started, the store fed."""
    from fpverify.edge.kiosk.display import KioskDisplay
    from fpverify.edge.kiosk.server import KioskService
    from fpverify.edge.sensor.simulator import SimulatedSensor
    from fpverify.edge.station import Station

    if sim is None:
        sim = SimulatedSensor(baud=115200)
        sim.start()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "his.token").write_text(HIS_TOKEN + "\n")
    os.chmod(folder / "his.token", 0o600)
    cfg = load_config(cfg_path or desk_config(folder, sim.path, registry_url))
    display = KioskDisplay(hold_s=cfg.kiosk.outcome_hold_s)
    hand = Hand(sim)
    station = Station(cfg, display=Displays(display, hand), sync=False, mqtt=mqtt)
    station.store.apply_feed(feed)
    station.start()
    service = KioskService(station, display).start()
    return KioskDesk(station, service, display, hand, sim, cfg, folder)


def close_desk(d: KioskDesk) -> None:
    d.service.stop()
    d.station.stop()
    d.sim.stop()
