"""The audit chain detects edited, deleted and cut rows; the CLI names the row."""

from __future__ import annotations

from sqlalchemy import text
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.server import audit
from fpverify.server.crud import devices, users
from fpverify.server.db import Database
from tests.server.helpers import make_settings


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


# ---- alert notes: kept, shown, digested in the audit log, checked by audit verify ------------------

def _alert(db: Database) -> int:
    import uuid
    from datetime import UTC, datetime

    from fpverify.server.models import Alert

    with db.session() as s:
        a = Alert(kind="no_match", result_id=uuid.uuid4(), card_number="C-42", device_id="dev-1", site_id="site-1",
                  card_retained=True, raised_at=datetime.now(UTC), status="open")
        s.add(a)
        s.commit()
        return a.id


def test_alert_notes_survive_resolution_and_audit_verify_covers_them(any_db, monkeypatch):
    from fastapi.testclient import TestClient

    from fpverify.server.app import create_app
    from fpverify.server.core.config import get_settings
    from tests.server.helpers import auth, login, seed_users

    db = any_db
    seed_users(db)
    alert_id = _alert(db)
    with TestClient(create_app(db.settings, db)) as c:
        sup, sup2, aud = (auth(login(c, n)) for n in ("supervisor", "supervisor2", "auditor"))
        assert c.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"comment": "called the office"},
                      headers=sup).status_code == 200
        assert c.post(f"/api/v1/alerts/{alert_id}/notes", json={"text": "holder's son had the card"},
                      headers=sup2).status_code == 201
        assert c.post(f"/api/v1/alerts/{alert_id}/notes", json={"text": "x"}, headers=aud).status_code == 403
        r = c.post(f"/api/v1/alerts/{alert_id}/resolve", json={"comment": "reported to the centre"}, headers=sup)
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        assert c.post(f"/api/v1/alerts/{alert_id}/notes", json={"text": "late"}, headers=sup).status_code == 409
        got = c.get(f"/api/v1/alerts/{alert_id}", headers=aud).json()
        assert [(n["kind"], n["author"], n["text"]) for n in got["notes"]] == [
            ("acknowledge", "supervisor", "called the office"), ("note", "supervisor2", "holder's son had the card"),
            ("resolve", "supervisor", "reported to the centre")]
        assert all(n["at"] for n in got["notes"]) and got["comment"] == "reported to the centre"
        assert c.get("/api/v1/alerts?status=resolved", headers=aud).json()[0]["notes"] == got["notes"]
        assert c.get("/api/v1/audit/verify", headers=aud).json()["ok"]
        audited = c.get("/api/v1/audit?entity=alert_note", headers=aud).json()
        assert len(audited) == 3 and all(e["after_digest"] for e in audited)
        note_ids = [str(n["id"]) for n in got["notes"]]
        assert [e["entity_id"] for e in audited] == note_ids
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", db.url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(cli_app, ["server", "audit", "verify"]).exit_code == 0
        # an insider edits the acknowledgement note in the database
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alert_notes SET text = 'nothing happened' WHERE id = :i"), {"i": note_ids[0]})
        res = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert res.exit_code == 1 and f"alert_note {note_ids[0]}" in res.output and "edited" in res.output, res.output
        with db.engine.begin() as conn:  # ... or deletes it
            conn.execute(text("DELETE FROM alert_notes WHERE id = :i"), {"i": note_ids[0]})
        res = runner.invoke(cli_app, ["server", "audit", "verify"])
        assert res.exit_code == 1 and "missing (deleted)" in res.output, res.output
    finally:
        get_settings.cache_clear()


def test_a_note_written_around_the_registry_is_found(sqlite_url):
    db = Database(settings=make_settings(sqlite_url))
    db.migrate()
    alert_id = _alert(db)
    with db.session() as s:
        from fpverify.server.crud import alerts

        alerts.acknowledge_alert(s, "sup", alert_id, "first")
        s.commit()
    assert verify(db).ok
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO alert_notes (alert_id, at, author, kind, text) "
                          "VALUES (:a, '2026-01-01 00:00:00', 'sup', 'note', 'backdated')"), {"a": alert_id})
    r = verify(db)
    assert not r.ok and r.bad_seq is None and "no audit row" in r.problem, r
    db.dispose()
