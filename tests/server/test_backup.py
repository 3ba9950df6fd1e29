"""Encrypted backup and restore: equality after restore into an empty database; clear errors."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.crud import devices, holders, users
from fpverify.server.db import Database
from fpverify.server.models import VerificationRecord
from fpverify.server.ops.backup import BackupError, backup, dump_rows, new_key_file, restore
from tests.server.helpers import make_settings

KEY = "test-national-id-key"


def fill(db: Database) -> None:
    with db.session() as s:
        users.create_user(s, "cli", "sup1", "long enough pw", "supervisor")
        devices.create_device(s, "cli", "site-1", "dev-1", create_site_if_missing=True)
        holders.create_holder(s, "enr", KEY, "C1001", "Wang Wu", "110101199001011111")
        holders.record_consent(s, "enr", "C1001", datetime.now(UTC), "fingerprint verification", "op-1")
        up = wire.EnrollmentUpload(
            enrollment_id=uuid.uuid4(), device_id="dev-1", card_number="C1001", operator_id="op-1",
            consent=wire.Consent(given_at=datetime.now(UTC), scope="fp", witnessed_by="op-1"),
            fingers=[wire.EnrolledFinger(finger=2, templates=[secrets.token_bytes(300) for _ in range(3)],
                                         qualities=[70, 80, 90])])
        holders.enroll(s, "enr", up, lambda *a: None)
        s.execute(insert(VerificationRecord), [{
            "result_id": uuid.uuid4(), "device_id": "dev-1", "site_id": "site-1", "card_number": "C1001",
            "outcome": "match", "purpose": "billing", "captured_at": datetime.now(UTC),
            "received_at": datetime.now(UTC), "attempts": 1, "score": 55.5} for _ in range(10)])
        s.commit()


def rows(db: Database) -> list:
    return list(dump_rows(db.engine))


def test_backup_restore_roundtrip(tmp_path, pg_url):
    src = Database(settings=make_settings(f"sqlite:///{tmp_path / 'src.db'}"))
    src.migrate()
    fill(src)
    key_file = tmp_path / "backup.key"
    new_key_file(key_file)
    from fpverify.server.ops.backup import load_key

    key = load_key(key_file)
    out = tmp_path / "registry.fpvbak"
    counts = backup(src.engine, out, key)
    assert counts["templates"] == 3 and counts["verification_results"] == 10
    raw = out.read_bytes()
    assert b"Wang Wu" not in raw and b"C1001" not in raw  # encrypted, not merely compressed
    # restore into an empty PostgreSQL database (cross-backend) and compare every row
    dst = Database(settings=make_settings(pg_url))
    dst.migrate()
    restore(dst.engine, out, key)
    assert rows(dst) == rows(src)
    with dst.session() as s:
        assert audit.verify(s).ok  # the audit chain survives the round trip
        users.create_user(s, "cli", "after-restore", "long enough pw", "auditor")  # sequences continue
        s.commit()
    src.dispose()
    dst.dispose()


def test_restore_refuses_wrong_key_tampering_and_nonempty(tmp_path):
    src = Database(settings=make_settings(f"sqlite:///{tmp_path / 'src.db'}"))
    src.create_all()
    fill(src)
    key = secrets.token_bytes(32)
    out = tmp_path / "b.fpvbak"
    backup(src.engine, out, key)
    empty = Database(settings=make_settings(f"sqlite:///{tmp_path / 'dst.db'}"))
    empty.create_all()
    with pytest.raises(BackupError, match="wrong key or altered"):
        restore(empty.engine, out, secrets.token_bytes(32))
    data = bytearray(out.read_bytes())
    data[40] ^= 1
    bad = tmp_path / "bad.fpvbak"
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="wrong key or altered"):
        restore(empty.engine, bad, key)
    cut = tmp_path / "cut.fpvbak"
    cut.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(BackupError, match="truncated"):
        restore(empty.engine, cut, key)
    with pytest.raises(BackupError, match="not empty"):
        restore(src.engine, out, key)
    fresh = Database(settings=make_settings(f"sqlite:///{tmp_path / 'fresh.db'}"))
    fresh.create_all()
    assert rows(empty) == rows(fresh)  # the failed restores left nothing behind
    restore(empty.engine, out, key)
    assert rows(empty) == rows(src)
