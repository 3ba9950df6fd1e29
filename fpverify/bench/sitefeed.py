"""`fpverify bench sitefeed`: a new station filling its cache from its site's feed, and the latency
of an on-demand card fetch (issue 18).

The registry runs on a private PostgreSQL (fpverify.services) under uvicorn in this process; the
station runs in another process (as a real one would, not sharing our GIL): the real Store
(SQLCipher), TemplateSync and its matcher check of every template. The registry holds a site of
`holders` card holders (`templates` each) and another site of `other` holders the station must
never receive, written the way the registry writes them (a hold, the adds, the status per
holder and site; each add also once in the registry's own log).

Templates are copies of a few real-format templates (matcher.extract of synthetic fingers): right
for bytes on the wire, parsing and storing, meaningless for accuracy. Figures:
- fill: wall time from an empty cache to the feed's current version (pages of `page_limit`
  changes, the station's default), with holders/s and templates/s; baseline in the same run: the
  same pages pulled and validated without checking or storing them (what the registry and HTTP
  cost alone).
- fetch: `fetches` cards of the other site fetched one after another (`TemplateSync.fetch_card`:
  HTTP, the registry's assignment, audit and feed rows, the station's check and store), median
  and 95th percentile. The bench raises the per-device fetch limit so the run is not throttled.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import typer

_CHUNK = 5000


def _templates(n: int) -> list[bytes]:
    from fpverify import matcher
    from fpverify.matcher import synth

    out = []
    for seed in range(n):
        out.append(matcher.extract(synth.impression(synth.generate_finger(100 + seed), 0)[0]).to_bytes())
    return out


def _fill_registry(db, site: str, prefix: str, n: int, per: int, blobs: list[bytes], device: str) -> None:
    """N holders enrolled at `site`, with the rows the registry's own code would have written."""
    from sqlalchemy import insert, select, update

    from fpverify.server.models import (
        CardHolder,
        Consent,
        Counter,
        Enrollment,
        FeedChange,
        HolderSite,
        Template,
    )

    now = datetime.now(UTC)
    with db.engine.begin() as c:
        version = c.execute(select(Counter.value).where(Counter.name == "feed")).scalar_one()
        consent0 = (c.execute(select(Consent.id).order_by(Consent.id.desc()).limit(1)).scalar() or 0) + 1
        for start in range(0, n, _CHUNK):
            cards = [f"{prefix}{i:07d}" for i in range(start, min(n, start + _CHUNK))]
            c.execute(insert(CardHolder.__table__), [
                {"card_number": k, "name": k, "national_id_hmac": uuid.uuid4().hex, "status": "active",
                 "created_at": now, "updated_at": now} for k in cards])
            cids = {k: consent0 + start + j for j, k in enumerate(cards)}
            c.execute(insert(Consent.__table__), [
                {"id": cids[k], "card_number": k, "given_at": now, "scope": "fingerprint", "witnessed_by": "op",
                 "recorded_by": "bench", "recorded_at": now} for k in cards])
            eids = {k: str(uuid.uuid4()) for k in cards}
            c.execute(insert(Enrollment.__table__), [
                {"id": eids[k], "card_number": k, "role": "holder", "device_id": device, "site_id": site,
                 "operator_id": "op", "uploaded_by": "bench", "consent_id": cids[k], "status": "enrolled",
                 "created_at": now} for k in cards])
            c.execute(insert(HolderSite.__table__), [
                {"card_number": k, "site_id": site, "reason": "enrolled", "since": now, "last_seen": now}
                for k in cards])
            templates, changes = [], []
            for j, k in enumerate(cards):
                version += 1
                changes.append({"version": version, "op": "hold", "card_number": k, "template_id": None,
                                "status": "site", "site_id": site, "at": now})
                for f in range(per):
                    tid = uuid.uuid4().hex
                    templates.append({
                        "id": tid, "card_number": k, "enrollment_id": eids[k], "role": "holder", "finger": 2,
                        "quality": 80, "data": blobs[(start + j + f) % len(blobs)], "status": "active",
                        "enrolled_by": "op", "device_id": device, "site_id": site, "enrolled_at": now})
                    for where in (None, site):
                        version += 1
                        changes.append({"version": version, "op": "add", "card_number": k, "template_id": tid,
                                        "status": None, "site_id": where, "at": now})
                version += 1
                changes.append({"version": version, "op": "card", "card_number": k, "template_id": None,
                                "status": "active", "site_id": site, "at": now})
            c.execute(insert(Template.__table__), templates)
            c.execute(insert(FeedChange.__table__), changes)
        c.execute(update(Counter.__table__).where(Counter.name == "feed").values(value=version))


def _station(url: str, token: str, device: str, folder: str, page_limit: int, fetch_cards: list[str]) -> dict:
    """In its own process: fill a new cache, pull the same pages raw (baseline), then fetch cards."""
    import httpx

    from fpverify.edge.cache import Store, new_key
    from fpverify.edge.config import FetchSection, RegistrySection
    from fpverify.edge.sync import TemplateSync
    from fpverify.edge.wire import TemplateFeed

    cfg = RegistrySection(url=url, timeout_s=120, page_limit=page_limit,
                          fetch=FetchSection(timeout_s=10, tries=1, max_cards=len(fetch_cards) + 1))
    out: dict = {}
    with Store.open(Path(folder) / "station.db", new_key()) as store:
        sync = TemplateSync(cfg, device, store, token=token)
        t0 = time.perf_counter()
        out["changes"] = sync.sync_once()
        out["fill_s"] = time.perf_counter() - t0
        out["version"] = store.feed_version()
        out["counts"] = store.counts()
        out["cache_bytes"] = os.path.getsize(Path(folder) / "station.db")
        # baseline: the same pages, validated, neither checked by the matcher nor stored
        client = httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"})
        since, pages, t0 = 0, 0, time.perf_counter()
        while True:
            r = client.get(f"/api/v1/devices/{device}/templates", params={"since": since, "limit": page_limit})
            page = TemplateFeed.model_validate_json(r.content)
            pages += 1
            if not page.more or page.version == since:
                break
            since = page.version
        out["raw_pull_s"] = time.perf_counter() - t0
        out["pages"] = pages
        client.close()
        lat, failed = [], []
        for card in fetch_cards:
            t0 = time.perf_counter()
            why = sync.fetch_card(card)
            lat.append(time.perf_counter() - t0)
            if why is not None:
                failed.append(why)
        out["fetch_s"] = lat
        out["fetch_failed"] = failed
        out["fetched_stored"] = sum(1 for c in fetch_cards if store.has_card(c))
        sync.client.close()
    return out


def run_sitefeed_bench(out: Path, holders: int = 50000, other: int = 10000, templates: int = 3,
                       fetches: int = 200, page_limit: int = 500) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fpverify.server.app import create_app
    from fpverify.server.core.config import Settings
    from fpverify.server.crud import devices as devices_crud
    from fpverify.server.db import Database
    from fpverify.services import PrivatePostgres, ServedApp

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-sitefeed-"))
    pg = PrivatePostgres(work / "pg").start()
    served = None
    try:
        settings = Settings(database_url=pg.create_database("sitefeed"), mqtt_enabled=False, mode="development",
                            national_id_key="bench-key", card_fetch_per_minute=10000)
        db = Database(settings=settings)
        db.migrate()
        with db.session() as s:
            _, token = devices_crud.create_device(s, "bench", "site-a", "desk-a", create_site_if_missing=True)
            devices_crud.create_device(s, "bench", "site-b", "desk-b", create_site_if_missing=True)
            s.commit()
        blobs = _templates(24)
        t0 = time.perf_counter()
        _fill_registry(db, "site-a", "A", holders, templates, blobs, "desk-a")
        _fill_registry(db, "site-b", "B", other, templates, blobs, "desk-b")
        with db.engine.begin() as c:
            from sqlalchemy import text

            c.execute(text("ANALYZE"))
        setup_s = time.perf_counter() - t0
        served = ServedApp(create_app(settings, db), log_level="warning").start()
        url = f"http://127.0.0.1:{served.port}"
        cards = [f"B{i:07d}" for i in range(min(fetches, other))]
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            st = pool.submit(_station, url, token, "desk-a", str(work), page_limit, cards).result()
    finally:
        if served is not None:
            served.stop()
        pg.stop()
    lat = sorted(x * 1000 for x in st["fetch_s"])
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None
    counts = st["counts"]
    result = {
        "holders": holders, "other_site_holders": other, "templates_per_holder": templates,
        "page_limit": page_limit, "registry_setup_s": round(setup_s, 1),
        "fill_s": round(st["fill_s"], 2), "fill_holders_per_s": round(holders / st["fill_s"], 1),
        "fill_templates_per_s": round(counts["templates"] / st["fill_s"], 1), "changes_applied": st["changes"],
        "pages": st["pages"], "cache_cards": counts["cards"], "cache_templates": counts["templates"],
        "cache_bytes": st["cache_bytes"], "raw_pull_s": round(st["raw_pull_s"], 2),
        "fill_vs_raw_pull": round(st["fill_s"] / st["raw_pull_s"], 2),
        "fetch_n": len(lat), "fetch_failed": len(st["fetch_failed"]), "fetched_stored": st["fetched_stored"],
        "fetch_ms_median": round(statistics.median(lat), 1) if lat else None,
        "fetch_ms_p95": round(p95, 1) if p95 is not None else None,
        "fetch_ms_max": round(lat[-1], 1) if lat else None,
        "other_site_cards_in_cache_before_fetch": counts["cards"] - holders,
        "load_average": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(_report(result) + "\n")
    return result


def _report(r: dict) -> str:
    return "\n".join([
        "# bench sitefeed: a new station's cache fill and on-demand fetches",
        "",
        f"Registry on a private PostgreSQL under uvicorn (this process); the station in its own process "
        f"(SQLCipher store, TemplateSync, matcher check of each template). Site A: {r['holders']:,} holders x "
        f"{r['templates_per_holder']} templates; site B: {r['other_site_holders']:,} holders the station must "
        f"not receive. Templates are copies of 24 real-format templates (timing, not accuracy). "
        f"{r['cpus']} CPUs, load average {r['load_average']:.1f} at the end.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cache fill from empty (wall) | **{r['fill_s']} s** ({r['fill_holders_per_s']:,} holders/s, "
        f"{r['fill_templates_per_s']:,} templates/s; {r['changes_applied']:,} changes in {r['pages']} pages "
        f"of {r['page_limit']}) |",
        f"| the same pages pulled and validated only (baseline, same run) | {r['raw_pull_s']} s "
        f"(fill / baseline = {r['fill_vs_raw_pull']}) |",
        f"| cache after the fill | {r['cache_cards']:,} cards, {r['cache_templates']:,} templates, "
        f"{r['cache_bytes'] / 1e6:.1f} MB; other site's cards: {r['other_site_cards_in_cache_before_fetch']} |",
        f"| on-demand fetch, {r['fetch_n']} cards of site B one after another | median **{r['fetch_ms_median']} ms**, "
        f"p95 **{r['fetch_ms_p95']} ms**, max {r['fetch_ms_max']} ms; {r['fetch_failed']} failed, "
        f"{r['fetched_stored']} stored |",
        f"| registry set-up (bulk rows, not timed as a figure) | {r['registry_setup_s']} s |",
    ])


def bench_sitefeed(out: Path = typer.Option(..., "--out"),
                   holders: int = typer.Option(50000, help="card holders of the station's site"),
                   other: int = typer.Option(10000, help="holders of another site (never sent to the station)"),
                   templates: int = typer.Option(3, help="templates a holder"),
                   fetches: int = typer.Option(200, help="on-demand fetches timed"),
                   page_limit: int = typer.Option(500, help="changes a feed page (the station's default)")) -> None:
    """A new station's cache fill for a site of N holders, and the on-demand fetch latency."""
    if holders < 1 or other < 0 or not 1 <= templates <= 10 or fetches < 0 or not 1 <= page_limit <= 10000:
        raise typer.BadParameter("holders >= 1, other >= 0, 1 <= templates <= 10, fetches >= 0, 1 <= page_limit <= 10000")
    r = run_sitefeed_bench(out, holders, other, templates, fetches, page_limit)
    typer.echo(f"fill {r['fill_s']} s for {holders} holders ({r['fill_holders_per_s']} holders/s); "
               f"fetch median {r['fetch_ms_median']} ms, p95 {r['fetch_ms_p95']} ms")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("sitefeed")(bench_sitefeed)
