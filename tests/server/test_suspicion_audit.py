"""Suspicion marks are kept whole by the audit log (audit.KEPT): `fpverify server audit verify`
finds a mark edited, deleted or written around the registry. The poor-press rule's window and
minimum count are dashboard settings (FPVERIFY_DASHBOARD__POOR_WINDOW / __POOR_MIN_CHECKS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.server import audit
from fpverify.server.core.config import DashboardSettings, get_settings, load_settings
from fpverify.server.crud import suspicion
from fpverify.server.dashboard import suspicion_rules
from fpverify.server.db import Database
from tests.server.dashboard import seed

runner = CliRunner()


def _verify(db: Database) -> audit.VerifyReport:
    with db.session() as s:
        return audit.verify(s)


def test_audit_verify_notices_an_edited_or_deleted_suspicion_mark(any_db, monkeypatch):
    db = any_db
    with db.session() as s:
        m1 = suspicion.mark_handled(s, "supervisor", "repeat", "C-1@2026-01-01T00:00:00", "called the holder")
        m2 = suspicion.mark_handled(s, "supervisor", "device", "desk-1@2026-01-01", "sensor cleaned")
        s.commit()
        ids = (m1.id, m2.id)
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", db.url)
    get_settings.cache_clear()
    try:
        r = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert r.exit_code == 0 and "intact" in r.output, r.output
        with db.engine.begin() as c:  # an insider rewrites the note of a handled point
            c.execute(text("UPDATE suspicion_marks SET note = 'nothing to see' WHERE id = :i"), {"i": ids[1]})
        r = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert (
            r.exit_code == 1 and "suspicion device:desk-1@2026-01-01" in r.output and "edited" in r.output
        ), r.output
        with db.engine.begin() as c:  # ... or removes the mark, making the point look unhandled
            c.execute(text("DELETE FROM suspicion_marks WHERE id = :i"), {"i": ids[1]})
        r = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert r.exit_code == 1 and "missing (deleted)" in r.output, r.output
    finally:
        get_settings.cache_clear()


def test_a_mark_written_around_the_registry_is_found(db):
    with db.session() as s:
        suspicion.mark_handled(s, "supervisor", "travel", "123", "checked the cameras")
        s.commit()
    assert _verify(db).ok
    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO suspicion_marks (kind, key, handled_by, handled_at, note) "
                "VALUES ('overdue', '7@2026-01-01', 'supervisor', '2026-01-01 00:00:00', 'backdated')"
            )
        )
    r = _verify(db)
    assert not r.ok and "suspicion overdue:7@2026-01-01 has no audit row" in r.problem, r


def _desk_traffic(db, now: datetime) -> None:
    """desk A: 30 checks, 6 poor presses all within its latest 10; desk B: 8 checks, 4 poor."""
    rows = [
        ("city-reg-1", "city-hospital", "poor_quality" if i < 6 else "match", now - timedelta(minutes=i))
        for i in range(30)
    ]
    rows += [
        ("city-ward-3", "city-hospital", "poor_quality" if i < 4 else "match", now - timedelta(minutes=i))
        for i in range(8)
    ]
    seed.add_results(db, rows)


@pytest.mark.parametrize(
    "window, min_checks, flagged",
    [
        (50, 10, [("city-reg-1", 30, 6)]),  # the defaults: 6 of 30 = 20 %; desk B has too few checks
        (10, 10, [("city-reg-1", 10, 6)]),  # a shorter window sees the sensor going bad: 60 %
        (10, 5, [("city-reg-1", 10, 6), ("city-ward-3", 8, 4)]),  # a lower minimum judges desk B too
    ],
)
def test_the_poor_press_window_and_minimum_are_settings(db, window, min_checks, flagged):
    now = datetime.now(UTC)
    _desk_traffic(db, now)
    ds = DashboardSettings(poor_window=window, poor_min_checks=min_checks)
    with db.session() as s:
        got = suspicion_rules.poor_quality_devices(s, now - timedelta(hours=24), ds)
    assert [(d.device_id, d.total, d.poor) for d in got] == flagged


def test_the_poor_press_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FPVERIFY_DASHBOARD__POOR_WINDOW", "20")
    monkeypatch.setenv("FPVERIFY_DASHBOARD__POOR_MIN_CHECKS", "4")
    ds = load_settings().dashboard
    assert (ds.poor_window, ds.poor_min_checks) == (20, 4)
    assert (DashboardSettings().poor_window, DashboardSettings().poor_min_checks) == (50, 10)
