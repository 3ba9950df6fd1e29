"""The audit chain detects edited, deleted and cut rows; the CLI names the row."""

from __future__ import annotations

from sqlalchemy import text
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.server import audit
from fpverify.server.crud import devices, users
from fpverify.server.db import Database
from tests.server.conftest import make_settings


def populate(db: Database) -> None:
    with db.session() as s:
        users.create_user(s, "cli", "admin1", "long enough pw", "sysadmin")
        for i in range(5):
            devices.create_device(s, "admin1", "site-1", f"dev-{i}", create_site_if_missing=True)
        s.commit()


def verify(db: Database) -> audit.VerifyReport:
    with db.session() as s:
        return audit.verify(s)


def test_chain_intact_then_edit_detected(any_url):
    db = Database(settings=make_settings(any_url))
    db.migrate()
    populate(db)
    r = verify(db)
    assert r.ok and r.checked == 7, r  # user + site + 5 devices
    with db.engine.begin() as c:  # a direct edit, as a DBA could do it
        c.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4"))
    r = verify(db)
    assert not r.ok and r.bad_seq == 4 and "edited" in r.problem
    db.dispose()


def test_deleted_rows_detected(sqlite_url):
    db = Database(settings=make_settings(sqlite_url))
    db.create_all()
    populate(db)
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    r = verify(db)
    assert not r.ok and r.bad_seq == 3 and "deleted" in r.problem
    with db.engine.begin() as c:  # restore a consistent-looking prefix by cutting the tail instead
        c.execute(text("DELETE FROM audit_log WHERE seq >= 3"))
    r = verify(db)
    assert not r.ok and r.bad_seq == 3 and "newest rows deleted" in r.problem
    db.dispose()


def test_rehashed_edit_still_detected(sqlite_url):
    """An attacker who edits a row AND recomputes its hash breaks the next row's link."""
    db = Database(settings=make_settings(sqlite_url))
    db.create_all()
    populate(db)
    with db.session() as s:
        from fpverify.server.models import AuditEntry

        e = s.get(AuditEntry, 2)
        e.actor = "forged"
        e.hash = audit.row_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.entity, e.entity_id,
                                e.before_digest, e.after_digest, e.note)
        s.commit()
    r = verify(db)
    assert not r.ok and r.bad_seq == 3
    db.dispose()


def test_cli_audit_verify_names_row(sqlite_url, monkeypatch):
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", sqlite_url)
    from fpverify.server.core.config import get_settings

    get_settings.cache_clear()
    try:
        db = Database(settings=make_settings(sqlite_url))
        db.migrate()
        populate(db)
        runner = CliRunner()
        res = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert res.exit_code == 0 and "intact: 7 rows" in res.output, res.output
        with db.engine.begin() as c:
            c.execute(text("UPDATE audit_log SET note = 'x' WHERE seq = 5"))
        res = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert res.exit_code == 1 and "seq=5" in res.output, res.output
        db.dispose()
    finally:
        get_settings.cache_clear()
