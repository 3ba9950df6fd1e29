"""Screenshots of every dashboard page for docs/screenshots/, taken from a real demo run.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--play 25]

Plays the demo day (registry, broker, three simulated stations) for --play seconds, then drives
Debian's Chromium (/usr/bin/chromium) with Playwright as the supervisor and as the sysadmin, in
Chinese (`*-zh.png`, the default) and English (`*-en.png`). The PNGs are reduced to a 64-colour
palette to keep them small.
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


LANGUAGES = (("zh_CN", "zh"), ("en", "en"))  # the file suffix of each language


def shoot_pages(page, base: str, out: Path, suffix: str, demo, passwords: dict) -> None:
    """Every page in one language: as the supervisor (handling an alert and a suspicion point), the
    report on screen and as printed (A4 landscape), and what the sysadmin sees."""
    page.goto(f"{base}/dashboard/login")
    shoot(page, out / f"login-{suffix}.png", full_page=False)
    login(page, base, "supervisor", passwords["supervisor"])
    page.wait_for_function("document.querySelector('#trend') && document.querySelector('#trend').width > 0")
    shoot(page, out / f"overview-{suffix}.png")
    page.goto(f"{base}/dashboard/failures")
    shoot(page, out / f"failures-{suffix}.png")
    page.goto(f"{base}/dashboard/failures?outcome=no_match&site=riverside-pharmacy")
    shoot(page, out / f"failures-filtered-{suffix}.png")
    page.goto(f"{base}/dashboard/cards/{demo.cast.holders[2].card}")
    shoot(page, out / f"card-{suffix}.png")
    page.goto(f"{base}/dashboard/alerts")
    first = page.locator("form[action$='/acknowledge']").first
    if first.count():
        first.locator("input[name=comment]").fill("card retained at the counter; office called")
        first.locator("button").click()
        page.wait_for_selector(".notice")
    shoot(page, out / f"alerts-{suffix}.png")
    page.goto(f"{base}/dashboard/suspicion")
    point = page.locator("form[action$='/suspicion/handle']").first
    if point.count():
        point.locator("input[name=note]").fill("ward visited: patient present")
        point.locator("button").click()
        page.wait_for_selector(".notice")
    shoot(page, out / f"suspicion-{suffix}.png")
    page.goto(f"{base}/dashboard/report")
    shoot(page, out / f"report-{suffix}.png")
    page.set_viewport_size({"width": 1032, "height": 900})  # A4 landscape less 12 mm margins, at 96 dpi
    page.emulate_media(media="print")
    shoot(page, out / f"report-print-{suffix}.png")
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.context.clear_cookies(name="fpv_session")
    login(page, base, "admin", passwords["admin"])
    shoot(page, out / f"sysadmin-overview-{suffix}.png")
    page.goto(f"{base}/dashboard/failures")
    shoot(page, out / f"sysadmin-failures-{suffix}.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--play", type=float, default=25.0, help="seconds of demo day before the screenshots")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from fpverify.demo.cast import PASSWORDS
    from fpverify.demo.system import Demo

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
                for lang, suffix in LANGUAGES:
                    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, device_scale_factor=1)
                    ctx.add_cookies([{"name": "fpv_lang", "value": lang, "url": f"{base}/dashboard/"}])
                    shoot_pages(ctx.new_page(), base, args.out, suffix, demo, PASSWORDS)
                    ctx.close()
                browser.close()
        finally:
            demo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
