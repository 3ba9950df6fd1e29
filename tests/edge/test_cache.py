"""The encrypted station store: keys, integrity checks, migrations, feed application, wipe."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
import sqlcipher3

from fpverify.edge.cache import (
    MIGRATIONS,
    PAGE_SIZE,
    SCHEMA_VERSION,
    CacheError,
    CorruptCacheError,
    SchemaError,
    Store,
    WrongKeyError,
    new_key,
    parse_key,
    wipe,
)
from fpverify.edge.config import ConfigError, Secret
from fpverify.edge.outbox import Outbox, new_result_id
from fpverify.edge.wire import CardStatus, Outcome, Purpose, TemplateRevoke, VerificationResult
from tests.edge.helpers import feed, now, template_add


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def result(card: str = "C1234567", outcome: Outcome = Outcome.MATCH) -> VerificationResult:
    return VerificationResult(result_id=new_result_id(), device_id="desk-01", site_id="site-a", card_number=card,
                              outcome=outcome, purpose=Purpose.PHARMACY, captured_at=now())


@pytest.fixture
def filled(tmp_path):
    """A store with templates, a blocked card and queued results; returns (path, key)."""
    path, key = tmp_path / "station.db", new_key()
    with Store.open(path, key) as store:
        store.apply_feed(feed(0, [template_add(i + 1, f"t{i}", f"CARD{i:04d}", os.urandom(600)) for i in range(40)]
                              + [CardStatus(version=41, card_number="CARD0001", status="blocked")]))
        ob = Outbox(store)
        for _ in range(5):
            ob.add(result())
    return path, key


def test_reopen_keeps_everything(filled):
    path, key = filled
    with Store.open(path, key) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.feed_version() == 41
        assert store.counts()["templates"] == 40
        assert store.card_status("CARD0001") == "blocked"
        assert Outbox(store).count() == 5
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_file_is_encrypted(filled):
    path, _ = filled
    raw = path.read_bytes()
    assert b"SQLite format 3" not in raw
    assert b"CARD0001" not in raw and b"outbox" not in raw


def test_wrong_key_is_clear_and_touches_nothing(filled):
    path, _ = filled
    before, files = digest(path), sorted(os.listdir(path.parent))
    with pytest.raises(WrongKeyError, match="wrong key"):
        Store.open(path, new_key())
    assert digest(path) == before
    assert sorted(os.listdir(path.parent)) == files


@pytest.mark.parametrize("cut", ["half_page", "whole_pages", "empty"])
def test_truncated_file_is_refused_untouched(filled, cut):
    path, key = filled
    size = path.stat().st_size
    assert size >= 4 * PAGE_SIZE
    new_size = {"half_page": size - PAGE_SIZE // 2, "whole_pages": size - 2 * PAGE_SIZE, "empty": 0}[cut]
    os.truncate(path, new_size)
    before = digest(path)
    with pytest.raises(CorruptCacheError, match="truncated|integrity|empty"):
        Store.open(path, key)
    assert digest(path) == before and path.stat().st_size == new_size


def test_tampered_page_is_refused_untouched(filled):
    path, key = filled
    data = bytearray(path.read_bytes())
    data[len(data) - PAGE_SIZE + 100] ^= 0x5A  # one bit pattern in the last page
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(CorruptCacheError, match="integrity"):
        Store.open(path, key)
    assert digest(path) == before


def test_migration_from_version_1_keeps_queued_results(tmp_path):
    path, key = tmp_path / "old.db", new_key()
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO outbox (result_id, payload, created_at) VALUES (?, ?, ?)",
                 ("0190e0e0-0000-7000-8000-000000000001", '{"outcome": "no_match"}', now().isoformat()))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(path, key) as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        assert store.query("SELECT result_id, outcome FROM outbox_history") == [
            ("0190e0e0-0000-7000-8000-000000000001", "no_match")]


def test_newer_schema_is_refused(filled):
    path, key = filled
    with Store.open(path, key) as store:
        store.query(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaError, match="newer than this software"):
        Store.open(path, key)


def test_feed_application_is_versioned_and_atomic(filled):
    path, key = filled
    with Store.open(path, key) as store:
        with pytest.raises(CacheError, match="starts at version 5"):
            store.apply_feed(feed(5, [TemplateRevoke(version=42, template_id="t0", card_number="CARD0000")]))
        assert store.counts()["templates"] == 40 and store.feed_version() == 41
        store.apply_feed(feed(41, [TemplateRevoke(version=42, template_id="t0", card_number="CARD0000"),
                                   CardStatus(version=43, card_number="CARD0001", status="active")]))
        assert store.templates_for("CARD0000") == []
        assert store.card_status("CARD0001") == "active"
        assert store.feed_version() == 43


def test_expired_delegates_are_not_offered(tmp_path):
    with Store.open(tmp_path / "s.db", new_key()) as store:
        store.apply_feed(feed(0, [
            template_add(1, "h", "CARD9", b"holder-template"),
            template_add(2, "d-ok", "CARD9", b"delegate-template", role="delegate", delegate_id="son",
                         valid_until=now() + timedelta(days=30)),
            template_add(3, "d-old", "CARD9", b"delegate-template", role="delegate", delegate_id="aunt",
                         valid_until=now() - timedelta(days=1)),
        ]))
        assert sorted(t.template_id for t in store.templates_for("CARD9")) == ["d-ok", "h"]


def test_wipe_removes_the_store(filled):
    path, key = filled
    wiped = wipe(path)
    assert path in wiped and not path.exists()


def test_key_formats_and_permissions(tmp_path):
    key = new_key()
    assert parse_key(key) == key
    assert parse_key((key.hex() + "\n").encode()) == key
    with pytest.raises(CacheError, match="32 raw bytes or 64 hex"):
        parse_key(b"short")
    f = tmp_path / "k"
    f.write_text(key.hex())
    os.chmod(f, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Secret(file=f).read_bytes()
    os.chmod(f, 0o600)
    assert parse_key(Secret(file=f).read_bytes()) == key


def test_systemd_credential_wins_over_file(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "fpverify-cache-key").write_bytes(b"A" * 32)
    os.chmod(creds / "fpverify-cache-key", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    secret = Secret(credential="fpverify-cache-key", file=tmp_path / "missing")
    assert secret.read_bytes() == b"A" * 32
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="cannot read secret file"):
        secret.read_bytes()


def test_migration_from_version_3_keeps_cached_templates_without_cohort_statistics(tmp_path):
    """Step 3 -> 4 (issue 17) adds the cohort columns; templates cached before keep no statistics."""
    path, key = tmp_path / "v3.db", new_key()
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    for step in MIGRATIONS[:3]:
        for statement in (s.strip() for s in step.split(";")):
            if statement:
                conn.execute(statement)
    conn.execute("INSERT INTO templates VALUES ('t-old', 'C1234567', 'holder', NULL, NULL, 1, 80, ?, 1)",
                 (b"\x01" * 16,))
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store.open(path, key) as store:
        assert store.schema_version() == 4
        (t,) = store.templates_for("C1234567")
        assert (t.template_id, t.template, t.cohort_mean, t.cohort_sd) == ("t-old", b"\x01" * 16, None, None)
        with_stats = template_add(2, "t-new", "C1234567", b"\x02" * 16).model_copy(
            update={"cohort_mean": 0.061, "cohort_sd": 0.019})
        store.apply_feed(feed(0, [with_stats]))
        got = {t.template_id: (t.cohort_mean, t.cohort_sd) for t in store.templates_for("C1234567")}
    assert got == {"t-old": (None, None), "t-new": (0.061, 0.019)}
