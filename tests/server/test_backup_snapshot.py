"""A backup taken while the registry keeps writing is one consistent snapshot (PostgreSQL)."""

from __future__ import annotations

from fpverify.server.crud import users
from fpverify.server.ops.backup import dump_rows


def test_rows_written_during_a_backup_are_not_half_in_it(pg_db):
    rows = dump_rows(pg_db.engine)
    first = next(rows)  # the dump has begun (its first table read) ...
    with pg_db.session() as s:  # ... when a user is created: users, audit_log and audit_head change
        users.create_user(s, "test", "late.user", "a long enough password", "auditor")
        s.commit()
    dumped = [first, *rows]
    names = [r["row"]["username"] for r in dumped if r["table"] == "users"]
    assert "late.user" not in names, "the backup saw a row written after it began"
    (head,) = [r["row"] for r in dumped if r["table"] == "audit_head"]
    seqs = [r["row"]["seq"] for r in dumped if r["table"] == "audit_log"]
    assert max(seqs, default=0) == head["seq"], "audit head and audit rows from different moments"
    with pg_db.session() as s:  # and the user exists: the backup blocked nobody
        assert users.by_name(s, "late.user") is not None
