"""Screenshots of every dashboard page for docs/screenshots/, taken from a real demo run.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--play 25]

Plays the demo day (registry, broker, three simulated stations) for --play seconds, then drives
Debian's Chromium (/usr/bin/chromium) with Playwright as the supervisor and as the sysadmin. The
PNGs are reduced to a 64-colour palette to keep them small.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")


def shrink(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def shoot(page, path: Path, full_page: bool = True) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=full_page)
    shrink(path)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--play", type=float, default=25.0, help="seconds of demo day before the screenshots")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from fpverify.demo import PASSWORDS, Demo

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fpverify-shots-") as tmp:
        demo = Demo(Path(tmp), say=print)
        try:
            demo.start()
            demo.start_enrollment()
            demo.play(args.play)
            demo.drain()
            base = demo.registry.url
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                ctx = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
                page = ctx.new_page()
                page.goto(f"{base}/dashboard/login")
                shoot(page, args.out / "login.png", full_page=False)
                login(page, base, "supervisor", PASSWORDS["supervisor"])
                page.wait_for_function("document.querySelector('#trend') && document.querySelector('#trend').width > 0")
                shoot(page, args.out / "overview.png")
                page.goto(f"{base}/dashboard/failures")
                shoot(page, args.out / "failures.png")
                page.goto(f"{base}/dashboard/failures?outcome=no_match&site=riverside-pharmacy")
                shoot(page, args.out / "failures-filtered.png")
                page.goto(f"{base}/dashboard/cards/{demo.cast['holders'][2].card}")
                shoot(page, args.out / "card.png")
                page.goto(f"{base}/dashboard/alerts")
                first = page.locator("form[action$='/acknowledge']").first
                if first.count():
                    first.locator("input[name=comment]").fill("card retained at the counter; office called")
                    first.locator("button").click()
                    page.wait_for_selector(".notice")
                shoot(page, args.out / "alerts.png")
                page.goto(f"{base}/dashboard/suspicion")
                shoot(page, args.out / "suspicion.png")
                page.goto(f"{base}/dashboard/report")
                shoot(page, args.out / "report.png")
                page.emulate_media(media="print")
                shoot(page, args.out / "report-print.png")
                page.emulate_media(media="screen")
                ctx.clear_cookies()
                login(page, base, "admin", PASSWORDS["admin"])
                shoot(page, args.out / "sysadmin-overview.png")
                page.goto(f"{base}/dashboard/failures")
                shoot(page, args.out / "sysadmin-failures.png")
                browser.close()
        finally:
            demo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
