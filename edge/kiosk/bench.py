"""`fpverify bench kiosk`: from the card scan to the outcome on the kiosk page, the whole desk.

A real station (encrypted store, the real matcher, the real pyfingerprint driver) on the simulated
sensor at 115200 baud, its kiosk page in Chromium (Playwright, /usr/bin/chromium). Each run types the
card number and Enter into the page as a keyboard-wedge reader does; the patient's finger is on the
sensor as soon as the page asks for it, so the figure is the station's time, not the patient's. The
page itself timestamps the Enter key and the moment the outcome screen appears (performance.now()).
Without Chromium the scan is the page's own request (POST /kiosk/card) and the outcome is read from
the event stream the page listens to.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from fpverify.edge.bench import uart_transfer_s

CHROMIUM = "/usr/bin/chromium"  # Debian's; headless, and nothing fetched from Google's services
CHROMIUM_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
)
CHROMIUM_ARGS = [*CHROMIUM_FLAGS.split(), "--disable-sync", "--no-first-run"]


def launch_chromium(playwright):
    """Chromium for the bench and the kiosk's browser tests."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


OUTCOMES = [
    "match",
    "delegate_match",
    "no_match",
    "not_enrolled",
    "card_blocked",
    "poor_quality",
    "sensor_error",
]
TIMER_JS = """() => {
  window.__t = {};
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') window.__t.scan = performance.now(); });
  new MutationObserver(() => {
    if (OUTCOMES.includes(document.body.dataset.screen) && window.__t.scan && !window.__t.out)
      window.__t.out = performance.now();
  }).observe(document.body, {attributes: true});
}""".replace("OUTCOMES", json.dumps(OUTCOMES))


class _Hand:
    """Presses the next probe the moment the page asks for a finger."""

    def __init__(self, sim, images) -> None:
        self.sim, self.images = sim, list(images)

    def show(self, prompt) -> None:
        from fpverify.edge.prompts import Step

        if prompt.step is Step.PLACE_FINGER and self.images:
            self.sim.place_finger(self.images.pop(0))

    def outcome(self, result, message: str) -> None:
        self.sim.lift_finger()


def _enrolled(card: str, seed: int):
    from fpverify import matcher
    from fpverify.edge.sensor.simulator import fit_to_sensor
    from fpverify.edge.wire import TemplateAdd, TemplateFeed
    from fpverify.matcher import synth

    master = synth.generate_finger(seed)
    changes = [
        TemplateAdd(
            version=k + 1,
            template_id=f"t{k}",
            card_number=card,
            finger=2,
            quality=80,
            template=matcher.extract(fit_to_sensor(synth.impression(master, k)[0])).to_bytes(),
        )
        for k in range(3)
    ]
    return TemplateFeed(since=0, version=len(changes), changes=changes), master


def run_kiosk_bench(out: Path, runs: int = 10, baud: int = 115200) -> dict:
    from fpverify.edge.cache import new_key
    from fpverify.edge.config import EdgeConfig
    from fpverify.edge.kiosk.display import KioskDisplay
    from fpverify.edge.kiosk.server import KioskService
    from fpverify.edge.prompts import Displays
    from fpverify.edge.sensor.simulator import SimulatedSensor, fit_to_sensor
    from fpverify.edge.station import Station
    from fpverify.matcher import synth

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = "BENCH0001"
    feed, master = _enrolled(card, 101)
    probes = [fit_to_sensor(synth.impression(master, 3 + i, seed=i)[0]) for i in range(runs + 1)]
    use_browser = Path(CHROMIUM).exists()
    times, outcomes = [], []
    with tempfile.TemporaryDirectory(prefix="fpv-kiosk-bench-") as tmp, SimulatedSensor(baud=baud) as sim:
        key = Path(tmp) / "cache.key"
        key.write_text(new_key().hex())
        key.chmod(0o600)
        cfg = EdgeConfig.model_validate(
            {
                "station": {"device_id": "bench-desk", "site_id": "bench", "capture_wait_s": 10},
                "sensor": {"port": sim.path, "baud": baud, "timeout_s": 3.0},
                "cache": {"path": str(Path(tmp) / "station.db"), "key": {"file": str(key)}},
                "kiosk": {"enabled": True, "port": 0, "outcome_hold_s": 60},
            }
        )
        kiosk = KioskDisplay(hold_s=cfg.kiosk.outcome_hold_s)
        hand = _Hand(sim, probes)
        station = Station(cfg, display=Displays(kiosk, hand), mqtt=False, sync=False)
        station.store.apply_feed(feed)
        station.start()
        service = KioskService(station, kiosk).start()
        try:
            measure = _browser_runs if use_browser else _http_runs
            times, outcomes = measure(service.url, card, runs + 1)
        finally:
            service.stop()
            station.stop()
    times, outcomes = times[1:], outcomes[1:]  # the first run warms up (imports, parsed templates)
    transfer = uart_transfer_s(baud, 128)
    med = statistics.median(times)
    results = {
        "median_s": round(med, 3),
        "p90_s": round(sorted(times)[int(0.9 * (len(times) - 1))], 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "runs": len(times),
        "baud": baud,
        "uart_transfer_s": round(transfer, 3),
        "station_beyond_transfer_s": round(med - transfer, 3),
        "through": "chromium page (keyboard Enter -> outcome screen)"
        if use_browser
        else "page endpoints (POST /kiosk/card -> outcome event)",
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(
        "# Kiosk bench: card scan -> outcome on the station's page\n\n"
        f"- median {results['median_s']} s (p90 {results['p90_s']} s, min {results['min_s']}, max "
        f"{results['max_s']}) over {results['runs']} checks, through the {results['through']}\n"
        f"- the image's UART transfer alone at {baud} baud: {results['uart_transfer_s']} s; the rest "
        f"(finger detection, matcher, durable commit, page update): {results['station_beyond_transfer_s']} s\n"
        f"- outcomes: {results['outcomes']} (genuine probes of the enrolled finger)\n\n"
        "Simulated sensor on a pty paced at the baud rate, driven by the real pyfingerprint; the finger is "
        "on the sensor as soon as the page asks for it.\n"
    )
    return results


def _browser_runs(url: str, card: str, n: int) -> tuple[list[float], list[str]]:
    from playwright.sync_api import sync_playwright

    times, outcomes = [], []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1024, "height": 600})
        page.goto(url)
        page.wait_for_selector("body[data-screen='present_card']")
        page.evaluate(TIMER_JS)
        for _ in range(n):
            page.evaluate("() => { window.__t = {}; }")
            page.keyboard.type(card, delay=2)
            page.keyboard.press("Enter")
            page.wait_for_function("() => window.__t.out", timeout=60000)
            t = page.evaluate("() => window.__t")
            times.append((t["out"] - t["scan"]) / 1000)
            outcomes.append(page.get_attribute("body", "data-screen"))
        browser.close()
    return times, outcomes


def _scan(url: str, card: str, patience_s: float = 30.0) -> float:
    """POST the card as the reader does; when the desk is still finishing the previous check (409
    "busy": the record is written and the outcome shown a moment before the desk's worker marks the
    check done) scan again shortly, as a clerk would. Returns the monotonic time of the scan the desk
    took."""
    import httpx

    deadline = time.monotonic() + patience_s
    while True:
        t0 = time.monotonic()
        r = httpx.post(url + "/card", json={"text": card}, timeout=10)
        if r.status_code != 409 or r.json().get("reason") != "busy" or t0 > deadline:
            r.raise_for_status()
            return t0
        time.sleep(0.05)


def _http_runs(url: str, card: str, n: int) -> tuple[list[float], list[str]]:
    import httpx

    times, outcomes = [], []
    for _ in range(n):
        with httpx.stream("GET", url + "/events", timeout=60) as events:
            screens = (
                json.loads(line[6:])["screen"] for line in events.iter_lines() if line.startswith("data: ")
            )
            next(screens)  # the screen as it is now (the previous outcome)
            t0 = _scan(url, card)
            for screen in screens:
                if screen in OUTCOMES:
                    times.append(time.monotonic() - t0)
                    outcomes.append(screen)
                    break
    return times, outcomes
