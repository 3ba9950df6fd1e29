"""Plain helpers of the shift tests: clerks' synthetic fingers, a staff feed, a desk whose config
requires a shift, and the sign-in calls the kiosk page makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from fpverify.edge.wire import StaffFeed, StaffMember, StaffTemplate
from tests.edge.kiosk.helpers import desk_config, make_desk

CLERK, CLERK2 = 40, 47  # synthetic finger seeds of two clerks (far from the patients' 38, 36, 45)
PIN, PIN2 = "480715", "305928"
SHIFT_TOML = "\n[shift]\nrequired = true\ntimeout_s = 600\npin_free_failures = 3\npin_delay_s = 30\npin_max_failures = 6\n"
_cheap = PasswordHasher(time_cost=1, memory_cost=64)  # test speed; the registry's default is strong


def clerk_fingers() -> dict[int, list]:
    from fpverify.edge.sensor.simulator import fit_to_sensor
    from fpverify.matcher import synth

    out = {}
    for seed in (CLERK, CLERK2):
        master = synth.generate_finger(seed)
        out[seed] = [fit_to_sensor(synth.impression(master, k)[0]) for k in range(4)]
    return out


def staff_feed(clerks: dict[int, list], frozen: tuple[str, ...] = (), at: datetime | None = None,
               site: str = "site-a") -> StaffFeed:
    """clerk.wang (finger CLERK, PIN) and clerk.li (finger CLERK2, PIN2), three templates each."""
    from fpverify import matcher

    members = []
    for name, seed, pin in (("clerk.li", CLERK2, PIN2), ("clerk.wang", CLERK, PIN)):
        if name in frozen:
            members.append(StaffMember(operator_id=name, status="frozen"))
            continue
        templates = [StaffTemplate(template_id=f"st-{name}-{k}", finger=2, quality=80,
                                   template=matcher.extract(clerks[seed][k]).to_bytes()) for k in range(3)]
        members.append(StaffMember(operator_id=name, status="active", pin_hash=_cheap.hash(pin), templates=templates))
    return StaffFeed(site_id=site, generated_at=at or datetime.now(UTC), staff=members)


def later(feed: StaffFeed, seconds: float = 1.0) -> datetime:
    return feed.generated_at + timedelta(seconds=seconds)


def make_shift_desk(folder: Path, feed, staff: StaffFeed, **kw):
    from fpverify.edge.sensor.simulator import SimulatedSensor

    sim = SimulatedSensor(baud=115200)
    sim.start()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = desk_config(folder, sim.path)
    cfg.write_text(cfg.read_text() + SHIFT_TOML)
    d = make_desk(folder, feed, cfg_path=cfg, sim=sim, **kw)
    d.station.staff.apply(staff, "site-a")
    return d


def sign_in_finger(desk, image) -> dict:
    """The clerk taps "sign in with my finger" and presses: returns the finished job's state."""
    desk.hand.queue(image)
    r = httpx.post(desk.url + "/shift/finger", timeout=10)
    assert r.status_code == 202, r.text
    job = desk.service.desk.get(r.json()["job"])
    assert job.done.wait(30)
    desk.sim.lift_finger()
    return {"state": job.state, "error": job.error, "operator": desk.station.shift.operator()}


def sign_in_pin(desk, operator: str, pin: str) -> httpx.Response:
    return httpx.post(desk.url + "/shift/pin", json={"operator_id": operator, "pin": pin}, timeout=20)
