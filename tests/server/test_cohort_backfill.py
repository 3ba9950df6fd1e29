"""The backfill of impostor-cohort statistics (server/ops/cohort_backfill.py, `fpverify server
cohort-backfill`), with the real matcher: templates stored without statistics get the values an
independent recomputation gives (the card's own templates never in the cohort), through the feed to
the station that holds the card (its cached row replaced, not doubled) and into its decision; a dry
run changes nothing; a rerun changes nothing more; an interrupted run keeps its committed batches and
a rerun finishes; too small a cohort leaves them null and says so; each batch and the run are
audited, the log holds counts only; `--recompute` rewrites statistics of an old scale; the command
fails clearly (exit 2) on a database it cannot use."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from fpverify import matcher
from fpverify.cli import app as cli_app
from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import RegistrySection, StationSection
from fpverify.edge.outbox import Outbox
from fpverify.edge.sync import TemplateSync
from fpverify.edge.wire import Outcome
from fpverify.edge.workflow import Engine, Verifier
from fpverify.matcher.decision import MIN_COHORT
from fpverify.server import audit, cohort
from fpverify.server.app import create_app
from fpverify.server.core.config import get_settings
from fpverify.server.crud import devices, holders
from fpverify.server.db import Database
from fpverify.server.ingest import feed
from fpverify.server.models import AuditEntry, Template
from fpverify.server.ops import cohort_backfill
from fpverify.services import ServedApp
from tests.server.cohort_helpers import Screen, holder, make_pool, no_duplicate, seed_cohort, upload, variants
from tests.server.helpers import make_settings

SIZE = 640  # FPVERIFY_COHORT_SIZE's default
NEW = ("CNEW0001", "CNEW0002")


@pytest.fixture(scope="module")
def pool():
    return make_pool()


def migrated(url: str) -> Database:
    d = Database(settings=make_settings(url, card_fetch_per_minute=1000))
    d.migrate()
    return d


@pytest.fixture
def db(tmp_path):
    d = migrated(f"sqlite:///{tmp_path / 'registry.db'}")
    yield d
    d.dispose()


def registry(s, pool, seeds: int = MIN_COHORT + 20, more: int = 0) -> None:
    """`seeds` other holders' templates enrolled with statistics (dummy values: not the backfill's
    to compute) and two cards enrolled without (before migration 0009), both at desk-a (site-a):
    CNEW0001 with 3 presses of one finger, CNEW0002 with 3 of another and `more` templates besides."""
    base, new = pool
    seed_cohort(s, variants(base, seeds))
    s.execute(update(Template).where(Template.card_number.like("K%")).values(cohort_mean=0.0, cohort_sd=1.0))
    for card, templates in (("CNEW0001", new[11]), ("CNEW0002", new[12] + variants(base, more, seed=9))):
        holder(s, card)
        holders.enroll(s, "enroller", upload(card, templates), no_duplicate, cohort_size=0)


def stats(s, cards=NEW) -> dict[str, tuple]:
    return {t.id: (t.cohort_mean, t.cohort_sd) for t in s.scalars(select(Template).where(Template.card_number.in_(cards)))}


def audit_rows(s) -> list[AuditEntry]:
    return list(s.scalars(select(AuditEntry).where(AuditEntry.actor == cohort_backfill.ACTOR).order_by(AuditEntry.seq)))


def state(s) -> tuple:
    """Everything a run may change: every template's statistics, the feed, the audit log."""
    return (stats(s, select(Template.card_number)), feed.current_version(s),
            s.scalar(select(func.count()).select_from(AuditEntry)))


def independent(s) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each template of the new cards: its scores against every active holder template of the
    other cards (fewer than SIZE here, so that is the whole cohort) and against its own card's,
    each the probe; every template parsed once."""
    rows = s.execute(select(Template.id, Template.card_number, Template.data).where(
        Template.status == "active", Template.role == "holder")).all()
    parsed = {tid: (card, matcher.Template.from_bytes(data)) for tid, card, data in rows}
    out = {}
    for tid, (card, t) in parsed.items():
        if card in NEW:
            others = [matcher.compare(c, t) for cc, c in parsed.values() if cc != card]
            own = [matcher.compare(c, t) for cc, c in parsed.values() if cc == card]
            out[tid] = np.array(others), np.array(own)
    return out


def test_backfill_fills_missing_statistics_and_the_station_gets_them(any_url, pool, tmp_path, caplog):
    _, new = pool
    db = migrated(any_url)
    served = None
    try:
        with db.session() as s:
            _, tok = devices.create_device(s, "sys", "site-a", "desk-a", create_site_if_missing=True)
            _, tok_b = devices.create_device(s, "sys", "site-b", "desk-b", create_site_if_missing=True)
            registry(s, pool)
            s.commit()
        served = ServedApp(create_app(db.settings, db)).start()
        url = f"http://127.0.0.1:{served.port}"
        store = Store.open(tmp_path / "a.db", new_key())
        sync = TemplateSync(RegistrySection(url=url, timeout_s=10, page_limit=500), "desk-a", store, token=tok)
        sync.sync_once()
        cached = {t.template_id: (t.cohort_mean, t.cohort_sd) for c in NEW for t in store.templates_for(c)}
        assert len(cached) == 6 and set(cached.values()) == {(None, None)}
        held = store.counts()["templates"]  # the seeds' cards were enrolled at desk-a too

        with db.session() as s:  # a dry run computes and counts, and writes nothing
            before = state(s)
            report = cohort_backfill.run(s, SIZE, dry_run=True, batch=4)
            assert (report.pending, report.examined, report.updated, sum(report.left.values())) == (6, 6, 6, 0)
            assert report.summary().startswith("cohort backfill (dry run): examined 6 of 6")
            s.rollback()
            assert state(s) == before

        caplog.set_level(logging.INFO, logger="fpverify.server")
        with db.session() as s:
            report = cohort_backfill.run(s, SIZE, batch=4)
        assert (report.examined, report.updated, report.batches, report.feed_entries) == (6, 6, 2, 6)
        assert report.summary() == ("cohort backfill: examined 6 of 6 active templates without statistics, "
                                    "updated 6, left without statistics 0, 6 feed entries for stations")

        with db.session() as s:
            got = stats(s)
            scores = independent(s)
            assert scores.keys() == got.keys()
            for tid, (others, own) in scores.items():
                assert len(others) == MIN_COHORT + 20 + 3  # the seeds and the other new card
                assert got[tid][0] == pytest.approx(others.mean(), rel=1e-9)
                assert got[tid][1] == pytest.approx(others.std(), rel=1e-9) and got[tid][1] > 0
                # the card's own presses, in the cohort, would have raised its mean
                assert np.concatenate([others, own]).mean() > got[tid][0] + 1e-6
            rows = audit_rows(s)
            assert [r.action for r in rows] == ["template.cohort", "template.cohort", "cohort.backfill"]
            assert "6 feed entries" in rows[-1].note and all(r.after_digest for r in rows)
            assert audit.verify(s).ok
        # the log: counts, never a template's id or content
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("fpverify.server")]
        assert any(report.summary() in m for m in logged)
        assert not any(tid in m for m in logged for tid in got)

        # the station pulls the feed: each cached template replaced with its statistics, none doubled
        sync.sync_once()
        cached = {t.template_id: (t.cohort_mean, t.cohort_sd) for c in NEW for t in store.templates_for(c)}
        assert cached == got and store.counts()["templates"] == held
        verifier = Verifier(StationSection(device_id="desk-a", site_id="site-a", min_quality=20), store,
                            Outbox(store), Engine("fmr_1e-4"), display=Screen())
        own = {round(m + sd * matcher.cohort_threshold("fmr_1e-4", 3), 4)
               for tid, (m, sd) in got.items() if tid in {t.template_id for t in store.templates_for("CNEW0001")}}
        r = verifier.verify_image("CNEW0001", new["press"][11])
        assert r.outcome == Outcome.MATCH and round(r.threshold, 4) in own  # the cohort rule now
        # site B holds neither card: its feed has nothing of them
        store_b = Store.open(tmp_path / "b.db", new_key())
        sync_b = TemplateSync(RegistrySection(url=url, timeout_s=10, page_limit=500), "desk-b", store_b, token=tok_b)
        sync_b.sync_once()
        assert store_b.counts()["templates"] == 0

        with db.session() as s:  # a rerun: nothing left to do, nothing changes but its audit row
            before = state(s)
            again = cohort_backfill.run(s, SIZE)
            assert (again.pending, again.examined, again.updated, again.feed_entries) == (0, 0, 0, 0)
            after = state(s)
            assert after[:2] == before[:2] and after[2] == before[2] + 1
        for c in (sync, sync_b):
            c.client.close()
        store.close()
        store_b.close()
    finally:
        if served is not None:
            served.stop()
        db.dispose()


def test_an_interrupted_run_keeps_its_batches_and_a_rerun_finishes(db, pool, monkeypatch):
    with db.session() as s:
        registry(s, pool)
        s.commit()
    writes = []
    real_write, real_compute = cohort_backfill._write, cohort.compute

    def write(*args, **kw):
        real_write(*args, **kw)
        writes.append(1)

    def compute(*args, **kw):
        if writes:  # Ctrl-C after the first batch was committed
            raise KeyboardInterrupt
        return real_compute(*args, **kw)

    monkeypatch.setattr(cohort_backfill, "_write", write)
    monkeypatch.setattr(cohort, "compute", compute)
    with db.session() as s, pytest.raises(KeyboardInterrupt):
        cohort_backfill.run(s, SIZE, batch=2)
    monkeypatch.undo()
    with db.session() as s:
        assert sum(v != (None, None) for v in stats(s).values()) == 2
        assert [r.action for r in audit_rows(s)] == ["template.cohort"]  # the batch kept is recorded
        report = cohort_backfill.run(s, SIZE, batch=2)
        assert (report.pending, report.examined, report.updated, report.batches) == (4, 4, 4, 2)
        assert all(v != (None, None) for v in stats(s).values())
        assert audit.verify(s).ok


def test_too_small_a_cohort_leaves_statistics_null_and_says_so(db, pool, monkeypatch):
    with db.session() as s:
        # 296 seeds, CNEW0001 with 3, CNEW0002 with 6: CNEW0001's cohort 302, CNEW0002's 299 (too small)
        registry(s, pool, seeds=MIN_COHORT - 4, more=3)
        s.commit()
        report = cohort_backfill.run(s, SIZE)
        assert (report.examined, report.updated, dict(report.left)) == (9, 3, {cohort.TOO_SMALL: 6})
        assert "left without statistics 6 (6 fewer than 300 decodable templates of other holders)" in report.summary()
        assert all(v != (None, None) for v in stats(s, ["CNEW0001"]).values())
        assert all(v == (None, None) for v in stats(s, ["CNEW0002"]).values())
        # under MIN_COHORT templates at the whole registry: an error, nothing written
        for t in list(s.scalars(select(Template).where(Template.card_number.like("K%")).limit(6))):
            holders.revoke_template(s, "sysadmin", t.id, "test")
        s.commit()
        before = state(s)
        with pytest.raises(cohort_backfill.BackfillError, match="holds 299 active holder templates"):
            cohort_backfill.run(s, SIZE)
        assert state(s) == before
    # the command says so and exits 2
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", db.url)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli_app, ["server", "cohort-backfill", "--dry-run"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2 and "error: the registry holds 299" in r.output, r.output


@pytest.mark.slow  # every active template recomputed: about 100,000 comparisons
def test_recompute_rewrites_statistics_of_an_old_scale(db, pool):
    _, new = pool
    with db.session() as s:
        seed_cohort(s, variants(pool[0], MIN_COHORT + 20))
        holder(s, "CNEW0001")
        holders.enroll(s, "enroller", upload("CNEW0001", new[11]), no_duplicate, cohort_size=SIZE)
        holder(s, "CNEW0003")  # undecodable bytes (validate_templates off) given statistics somehow
        junk = [f"not a template {i}".encode() for i in range(3)]
        holders.enroll(s, "enroller", upload("CNEW0003", junk), no_duplicate, cohort_size=0)
        s.execute(update(Template).where(Template.card_number == "CNEW0003").values(cohort_mean=1.0, cohort_sd=1.0))
        s.commit()
        enrolled = stats(s, ["CNEW0001"])
        # a matcher upgrade doubled the score scale: the stored statistics are stale
        for tid, (m, sd) in enrolled.items():
            s.execute(update(Template).where(Template.id == tid).values(cohort_mean=2 * m, cohort_sd=2 * sd))
        s.commit()
        report = cohort_backfill.run(s, SIZE, recompute=True)
        # every active template: the seeds (none before), CNEW0001's, CNEW0003's cleared
        assert (report.pending, report.examined, report.updated, report.cleared) == (326, 326, 323, 3)
        assert dict(report.left) == {cohort.UNDECODABLE: 3}
        for tid, (m, sd) in stats(s, ["CNEW0001"]).items():  # the same cohort as at enrollment
            assert m == pytest.approx(enrolled[tid][0], rel=1e-9) and sd == pytest.approx(enrolled[tid][1], rel=1e-9)
        assert set(stats(s, ["CNEW0003"]).values()) == {(None, None)}
        version = feed.current_version(s)
        again = cohort_backfill.run(s, SIZE, recompute=True, limit=30)
        assert (again.examined, again.updated, again.cleared, again.feed_entries) == (30, 0, 0, 0)
        assert again.unchanged == 30 - again.left[cohort.UNDECODABLE]  # CNEW0003's, if among the first 30
        assert feed.current_version(s) == version


def test_cli_database_it_cannot_use_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        for url, says in (("postgresql+psycopg://fp:s3cret@127.0.0.1:1/registry", "127.0.0.1:1"),
                          (f"sqlite:///{tmp_path / 'never-migrated.db'}", "no such table"),
                          ("not a database url", "error: database")):
            r = runner.invoke(cli_app, ["server", "cohort-backfill", "--database-url", url])
            assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
            assert "error: database" in r.output and says in r.output, r.output
            assert "s3cret" not in r.output and "Traceback" not in r.output
    finally:
        get_settings.cache_clear()
