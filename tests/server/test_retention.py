"""Retention of verification records (server/ops/retention.py) on SQLite and the private
PostgreSQL: only records captured and received before the cutoff go (whole partitions on
PostgreSQL), never one an unresolved alert refers to, never one received inside the period; the
run is audited and logged; a dry run changes nothing; a setting below the regulatory minimum is
refused; the counters of deleted signed results still refuse a replay. And migration 0008 on a
database holding rows keeps every one of them, both ways."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.core.config import ConfigError, RetentionSettings, get_settings, load_settings
from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database, alembic_config
from fpverify.server.ingest.writer import BatchWriter, Message
from fpverify.server.models import (
    Alert,
    AlertStatus,
    AuditEntry,
    DeadLetter,
    SignedCounter,
    VerificationRecord,
)
from fpverify.server.models.results import record_row
from fpverify.server.ops import retention
from fpverify.server.ops.partitions import Month, create_month, partitioned, partitions
from tests.server.helpers import make_settings
from tests.server.ingest.helpers import migrated_db

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # cutoff for 36 months: 2023-12-01
SIG = "ecdsa-p256-sha256:bm90LWNoZWNrZWQ="


def at(y: int, m: int, d: int = 15) -> datetime:
    return datetime(y, m, d, 12, 0, tzinfo=UTC)


def id_at(when: datetime) -> uuid.UUID:
    ms = int(when.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (7 << 76) | (random.getrandbits(12) << 64) | (2 << 62) | random.getrandbits(62))


def result(when: datetime, rid: uuid.UUID | None = None, **kw) -> wire.VerificationResult:
    return wire.VerificationResult(**({"result_id": rid or id_at(when), "device_id": "desk-1", "site_id": "site-1",
                                       "card_number": "C100200", "outcome": "match", "purpose": "billing",
                                       "captured_at": when} | kw))


def store(db: Database, rows: list[tuple[wire.VerificationResult, datetime]]) -> None:
    """Rows as the writer would have stored them when they were received (`received_at`)."""
    with db.session() as s:
        s.execute(insert(VerificationRecord), [record_row(r, received) for r, received in rows])
        s.commit()


def ids(db: Database) -> set[uuid.UUID]:
    with db.session() as s:
        return set(s.scalars(select(VerificationRecord.result_id)))


def retention_rows(db: Database) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.results")))


@pytest.fixture
def db(any_url):
    d = migrated_db(any_url, ["desk-1"], mode="development")
    yield d
    d.dispose()


@pytest.fixture
def history(db):
    """Five years of records; on PostgreSQL months 2022-05, 2023-06 and 2023-11 get partitions
    (2021-02 stays in DEFAULT, as if its month had never been made)."""
    pg = db.engine.dialect.name == "postgresql"
    if pg:
        with db.session() as s:
            for m in (Month(2022, 5), Month(2023, 6), Month(2023, 11), Month(2023, 12)):
                create_month(s, m)
            s.commit()
    r = {
        "2021-02": result(at(2021, 2)), "2022-05": result(at(2022, 5)), "2022-05b": result(at(2022, 5, 20)),
        "2023-06": result(at(2023, 6)), "2023-06-alert": result(at(2023, 6, 2), outcome="no_match"),
        "2023-06-resolved": result(at(2023, 6, 3), outcome="no_match"),
        "2023-11": result(at(2023, 11, 30), counter=41, signature=SIG),
        "2023-11-late": result(at(2023, 11, 2)),  # captured long ago, received inside the period
        "2023-12": result(at(2023, 12, 1, )), "now": result(NOW),
    }
    received = {k: v.captured_at for k, v in r.items()} | {"2023-11-late": at(2024, 3)}
    store(db, [(r[k], received[k]) for k in r])
    with db.session() as s:
        for key, status in (("2023-06-alert", AlertStatus.ACKNOWLEDGED), ("2023-06-resolved", AlertStatus.RESOLVED)):
            s.add(Alert(kind="no_match", result_id=r[key].result_id, card_number="C100200", device_id="desk-1",
                        site_id="site-1", card_retained=True, raised_at=r[key].captured_at, status=status))
        s.commit()
    return r


def test_cutoff_keeps_whole_months():
    assert retention.cutoff_for(NOW, 36) == datetime(2023, 12, 1, tzinfo=UTC)
    assert retention.cutoff_for(datetime(2027, 1, 1, tzinfo=UTC), 36) == datetime(2024, 1, 1, tzinfo=UTC)


def test_dry_run_counts_and_changes_nothing(db, history):
    before, audit_before = ids(db), len(retention_rows(db))
    with db.session() as s:
        dry = retention.run(s, 36, NOW, dry_run=True)
    assert dry.deleted == 6 and dry.dry_run and "would delete 6" in dry.summary()
    assert ids(db) == before and len(retention_rows(db)) == audit_before
    with db.session() as s:
        real = retention.run(s, 36, NOW)
    assert real.deleted == dry.deleted  # the dry run told the truth


def test_only_expired_unreferenced_records_go_and_the_run_is_audited(db, history, caplog):
    caplog.set_level(logging.INFO, logger="fpverify.server.ops.retention")
    with db.session() as s:
        report = retention.run(s, 36, NOW)
    gone = {"2021-02", "2022-05", "2022-05b", "2023-06", "2023-06-resolved", "2023-11"}
    assert ids(db) == {r.result_id for k, r in history.items() if k not in gone}
    assert report.deleted == len(gone)
    [row] = retention_rows(db)
    assert row.actor == "retention" and row.entity_id == "before 2023-12-01"
    assert "deleted 6 verification results" in row.note and "1 referenced by unresolved alerts" in row.note
    assert row.after_digest == audit.digest(report.as_dict())
    with db.session() as s:
        assert audit.verify(s).ok
        assert s.scalar(select(func.count()).select_from(Alert)) == 2  # alerts are never deleted
    assert any("deleted 6 verification results" in m for m in caplog.messages)
    if db.engine.dialect.name == "postgresql":
        with db.session() as s:
            months, has_default = partitions(s)
        assert Month(2022, 5) not in months and has_default  # dropped whole
        assert {Month(2023, 6), Month(2023, 11), Month(2023, 12)} <= set(months)  # held, and inside the period
        assert report.dropped == ["2022-05"] and "2022-05" in row.note
        held = {o.month: o for o in report.held}
        assert held["2023-06"].kept_referenced == 1 and held["2023-06"].deleted == 2
        assert held["2023-11"].kept_in_period == 1 and held["2023-11"].deleted == 1
        assert [o.deleted for o in report.outcomes if o.month == "default"] == [1]  # 2021-02
    with db.session() as s:  # nothing more is due: a second run deletes nothing
        assert retention.run(s, 36, NOW).deleted == 0


def test_resolving_the_alert_lets_its_record_go(db, history):
    kept = history["2023-06-alert"].result_id
    with db.session() as s:
        retention.run(s, 36, NOW)
        s.scalar(select(Alert).where(Alert.result_id == kept)).status = AlertStatus.RESOLVED
        s.commit()
    with db.session() as s:
        report = retention.run(s, 36, NOW)
    assert report.deleted == 1 and kept not in ids(db)


def test_counter_of_a_deleted_signed_result_still_refuses_a_replay(db, history):
    """2023-11 is signed with counter 41: its record goes with its month, its counter stays."""
    with db.session() as s:
        retention.run(s, 36, NOW)
    gone = history["2023-11"]
    assert gone.result_id not in ids(db)
    w = BatchWriter(db, db.settings)
    w.write([Message(wire.Topics("desk-1").results, gone.model_dump_json().encode(), 0, 1)])
    assert w.stats.stored == 0 and w.stats.duplicates == 1 and gone.result_id not in ids(db)  # not brought back
    replay = result(NOW, counter=41, signature=SIG)
    w.write([Message(wire.Topics("desk-1").results, replay.model_dump_json().encode(), 0, 1)])
    with db.session() as s:
        [dead] = s.scalars(select(DeadLetter)).all()
        assert s.scalar(select(SignedCounter.result_id).where(SignedCounter.counter == 41)) == gone.result_id
    assert "counter_reuse" in dead.reason and replay.result_id not in ids(db)


def test_setting_below_the_regulatory_minimum_is_refused(monkeypatch, tmp_path):
    with pytest.raises(ValidationError, match="regulatory minimum of 36"):
        RetentionSettings(results_months=24)
    assert RetentionSettings().results_months == 36
    monkeypatch.setenv("FPVERIFY_RETENTION__RESULTS_MONTHS", "35")
    with pytest.raises(ConfigError, match="FPVERIFY_RETENTION__RESULTS_MONTHS: .*below the regulatory minimum"):
        load_settings()
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli_app, ["server", "retention", "--dry-run"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2 and "FPVERIFY_RETENTION__RESULTS_MONTHS" in r.output and "Traceback" not in r.output


def test_cli_dry_run_then_real_run(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = migrated_db(url, ["desk-1"], mode="development")
    old = [result(at(2019, 3)), result(at(2020, 7))]
    store(db, [(r, r.captured_at) for r in old] + [(result(datetime.now(UTC)), datetime.now(UTC))])
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", url)
    monkeypatch.setenv("FPVERIFY_NATIONAL_ID_KEY", "test-national-id-key")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        r = runner.invoke(cli_app, ["server", "retention", "--dry-run"])
        assert r.exit_code == 0 and "would delete 2 verification results" in r.output, r.output
        assert len(ids(db)) == 3
        r = runner.invoke(cli_app, ["server", "retention"])
        assert r.exit_code == 0 and "deleted 2 verification results" in r.output, r.output
        assert len(ids(db)) == 1 and len(retention_rows(db)) == 1
        r = runner.invoke(cli_app, ["server", "partitions"])
        assert r.exit_code == 0 and "not partitioned" in r.output
    finally:
        get_settings.cache_clear()
        db.dispose()


def test_migration_0008_keeps_every_row_both_ways(any_url):
    """A database at 0007 holding results (signed and not, this month, years back, random ids) is
    migrated: every row is kept, each in its month's partition on PostgreSQL, the signed counters
    carried into signed_counters; down to 0007 and up again loses nothing either."""
    cfg = alembic_config(any_url)
    command.upgrade(cfg, "0007")
    db = Database(settings=make_settings(any_url))
    now = datetime.now(UTC)
    rows = [result(now), result(at(2021, 2)), result(at(2024, 7), counter=9, signature=SIG),
            result(now, uuid.uuid4()), result(now, counter=10, signature=SIG),
            result(at(1999, 1), outcome="no_match")]
    cols = [c for c in VerificationRecord.__table__.columns]
    with db.engine.begin() as c:  # the 0007 table, written as 0007's writer did
        c.execute(VerificationRecord.__table__.insert(), [{k.name: record_row(r, now)[k.name] for k in cols}
                                                         for r in rows])
    command.upgrade(cfg, "head")
    db.dispose()
    db = Database(settings=make_settings(any_url))
    with db.session() as s:
        devices_crud.create_device(s, "test", "site-1", "desk-1", create_site_if_missing=True)
        s.commit()
    assert ids(db) == {r.result_id for r in rows}
    with db.session() as s:
        assert dict(s.execute(select(SignedCounter.counter, SignedCounter.result_id)).all()) == {
            9: rows[2].result_id, 10: rows[4].result_id}
        if db.engine.dialect.name == "postgresql":
            assert partitioned(s)
            place = dict(s.execute(text("SELECT result_id, tableoid::regclass::text FROM verification_results")
                                   ).all())
            assert place[rows[1].result_id] == Month(2021, 2).table  # a month the data named
            assert place[rows[0].result_id] == Month.of(now).table
            assert place[rows[3].result_id] == place[rows[5].result_id] == "result_partitions.results_default"
    w = BatchWriter(db, make_settings(any_url, mode="development"))  # the carried counter still counts
    w.write([Message(wire.Topics("desk-1").results,
                     result(now, counter=9, signature=SIG).model_dump_json().encode(), 0, 1)])
    assert w.stats.stored == 0 and w.stats.dead_lettered == 1
    with db.session() as s:
        assert "counter_reuse" in s.scalar(select(DeadLetter.reason))
    db.dispose()
    command.downgrade(cfg, "0007")
    db = Database(settings=make_settings(any_url))
    assert ids(db) == {r.result_id for r in rows}
    with db.session() as s:
        assert not partitioned(s)
    db.dispose()
    command.upgrade(cfg, "head")
    db = Database(settings=make_settings(any_url))
    assert ids(db) == {r.result_id for r in rows}
    db.dispose()


def test_cli_partitions_and_retention_on_postgresql(pg_url, monkeypatch):
    db = migrated_db(pg_url, ["desk-1"], mode="development")
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", pg_url)
    monkeypatch.setenv("FPVERIFY_RETENTION__MONTHS_AHEAD", "5")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        first = Month.of(datetime.now(UTC))
        r = runner.invoke(cli_app, ["server", "partitions"])
        assert r.exit_code == 0 and f"partitions created: {first.shift(4)}, {first.shift(5)}" in r.output, r.output
        r = runner.invoke(cli_app, ["server", "partitions"])
        assert r.exit_code == 0 and "every partition ahead exists" in r.output, r.output
        with db.session() as s:
            create_month(s, Month(2020, 1))
            s.commit()
        old = result(at(2020, 1))
        store(db, [(old, old.captured_at)])
        r = runner.invoke(cli_app, ["server", "retention", "--dry-run"])
        assert r.exit_code == 0 and "would delete 1 verification results" in r.output and "2020-01" in r.output
        r = runner.invoke(cli_app, ["server", "retention"])
        assert r.exit_code == 0 and "deleted 1 verification results" in r.output and "dropped: 2020-01" in r.output
        with db.session() as s:
            assert Month(2020, 1) not in partitions(s)[0]
    finally:
        get_settings.cache_clear()
        db.dispose()
