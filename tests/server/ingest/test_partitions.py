"""verification_results partitioned by month on PostgreSQL (migration 0008): the ids of a month
land in its partition, every other id in the DEFAULT one; a redelivery is still stored once and a
signed counter used again in another month is still a replay; a month made later takes its rows
out of the DEFAULT partition. The replay guard (signed_counters) is checked on SQLite too."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from fpverify.edge import wire
from fpverify.server.ingest.writer import BatchWriter, Message
from fpverify.server.models import Alert, DeadLetter, SignedCounter, VerificationRecord, utcnow
from fpverify.server.models.results import record_row
from fpverify.server.ops.partitions import Month, ensure_months, partitioned, partitions
from tests.server.ingest.helpers import migrated_db

DEVICES = ["desk-1"]
SIG = "ecdsa-p256-sha256:bm90LWNoZWNrZWQ="  # development mode: signatures are not checked, counters are


def id_at(at: datetime) -> uuid.UUID:
    """A UUIDv7 created at `at` (48-bit ms time, version 7, variant 10, random bits)."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (7 << 76) | (random.getrandbits(12) << 64) | (2 << 62) | random.getrandbits(62))


def result(at: datetime | None = None, rid: uuid.UUID | None = None, **kw) -> wire.VerificationResult:
    at = at or utcnow()
    data = dict(result_id=rid or id_at(at), device_id="desk-1", site_id="site-1", card_number="C100200",
                outcome="match", purpose="billing", captured_at=at, score=0.31, threshold=0.1788)
    return wire.VerificationResult(**(data | kw))


def msg(r: wire.VerificationResult) -> Message:
    return Message(wire.Topics(r.device_id).results, r.model_dump_json().encode(), 0, 1)


def where(db, rid: uuid.UUID) -> str:
    """The partition holding a result."""
    with db.session() as s:
        return s.scalar(text("SELECT tableoid::regclass::text FROM verification_results WHERE result_id = :r"),
                        {"r": rid})


@pytest.fixture
def db(pg_url):
    d = migrated_db(pg_url, DEVICES, mode="development")
    yield d
    d.dispose()


@pytest.fixture
def any_db(any_url):
    d = migrated_db(any_url, DEVICES, mode="development")
    yield d
    d.dispose()


def test_table_is_partitioned_with_default_and_months_ahead(db):
    with db.session() as s:
        assert partitioned(s)
        strategy = s.scalar(text("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = "
                                 "'verification_results'::regclass"))
        months, has_default = partitions(s)
    assert strategy == "r" and has_default
    now = Month.of(utcnow())
    assert [now.shift(k) for k in range(4)] == [m for m in months if m >= now]


def test_results_land_in_their_month_and_odd_ids_in_default(db):
    now = utcnow()
    w = BatchWriter(db, db.settings)
    this, ahead = result(now), result(now, id_at(now + timedelta(days=62)))  # an id two months on
    past, future = result(now, id_at(datetime(1999, 5, 1, tzinfo=UTC))), result(now, id_at(datetime(2099, 1, 1, tzinfo=UTC)))
    random_id = result(now, uuid.uuid4())
    batch = [this, ahead, past, future, random_id]
    w.write([msg(r) for r in batch])
    assert w.stats.stored == 5
    m0, m2 = Month.of(now), Month.of(now + timedelta(days=62))
    assert where(db, this.result_id) == m0.table
    assert where(db, ahead.result_id) == m2.table
    for r in (past, future):
        assert where(db, r.result_id) == "result_partitions.results_default"
    w.write([msg(r) for r in batch])  # redelivered: each still stored once, wherever it lives
    assert w.stats.stored == 5 and w.stats.duplicates == 5
    with db.session() as s:
        assert s.scalar(select(text("count(*)")).select_from(VerificationRecord)) == 5


def test_month_made_later_takes_its_rows_from_default(db):
    """A result of a month with no partition yet goes to DEFAULT; making the month moves it; a
    redelivery afterwards is still a duplicate."""
    now = utcnow()
    late = now + timedelta(days=8 * 31)  # beyond the 3 months made ahead
    r = result(now, id_at(late))
    w = BatchWriter(db, db.settings)
    w.write([msg(r)])
    assert where(db, r.result_id) == "result_partitions.results_default"
    with db.session() as s:
        made = ensure_months(s, now, ahead=9)
        s.commit()
    assert Month.of(late) in made
    assert where(db, r.result_id) == Month.of(late).table
    with db.session() as s:
        assert ensure_months(s, now, ahead=9) == []  # nothing left to make
    w.write([msg(r)])
    assert w.stats.stored == 1 and w.stats.duplicates == 1
    with db.session() as s:
        assert s.scalar(text("SELECT count(*) FROM verification_results")) == 1


def test_replayed_counter_in_another_month_is_refused(any_db):
    """Two results of one device with the same counter, their ids in two months (two partitions on
    PostgreSQL): the second is a replay (dead letter + alert), the first is stored once."""
    now = utcnow()
    first = result(now, counter=7, signature=SIG)
    replay = result(now, id_at(now + timedelta(days=40)), counter=7, signature=SIG)
    w = BatchWriter(any_db, any_db.settings)
    w.write([msg(first)])
    w.write([msg(replay)])
    w.write([msg(first)])  # the genuine one again: a duplicate, not a replay
    with any_db.session() as s:
        assert set(s.scalars(select(VerificationRecord.result_id))) == {first.result_id}
        [dead] = s.scalars(select(DeadLetter)).all()
        kinds = {a.kind for a in s.scalars(select(Alert))}
        assert s.scalar(select(SignedCounter.result_id).where(SignedCounter.counter == 7)) == first.result_id
    assert "counter_reuse" in dead.reason and str(replay.result_id) in dead.payload.decode()
    assert "replayed_result" in kinds
    assert w.stats.stored == 1 and w.stats.duplicates == 1 and w.stats.dead_lettered == 1


def test_any_insert_of_a_used_counter_is_refused_by_the_database(any_db):
    """The trigger claims the counter of a row inserted around the writer (e.g. a restore or a hand
    edit): a second signed result with the same counter, in another month, is refused."""
    now = utcnow()
    a = result(now, counter=3, signature=SIG)
    b = result(now, id_at(now + timedelta(days=40)), counter=3, signature=SIG)
    with any_db.session() as s:
        s.execute(insert(VerificationRecord), [record_row(a, now)])
        s.commit()
        assert s.scalar(select(SignedCounter.result_id).where(SignedCounter.counter == 3)) == a.result_id
    with any_db.session() as s, pytest.raises(DBAPIError):
        s.execute(insert(VerificationRecord), [record_row(b, now)])
    with any_db.session() as s:  # unsigned rows never claim a counter
        s.execute(insert(VerificationRecord), [record_row(result(now, counter=3), now)])
        s.commit()
        assert s.scalar(select(text("count(*)")).select_from(SignedCounter)) == 1


def test_backup_and_restore_keep_the_partitions_and_the_guard(any_url, tmp_path, request):
    """A restore goes through the partitioned table (each row into its month) and brings the
    counters back with it: a replay of a restored signed result's counter is still refused."""
    from fpverify.server.ops.backup import backup, restore

    src = migrated_db(any_url, DEVICES, mode="development")
    now = utcnow()
    signed = result(now, counter=11, signature=SIG)
    BatchWriter(src, src.settings).write([msg(signed), msg(result(now, id_at(now + timedelta(days=40))))])
    key = bytes(range(32))
    backup(src.engine, tmp_path / "b.bak", key)
    src.dispose()
    pg = any_url.startswith("postgresql")
    target = (request.getfixturevalue("postgres_server").create_database(f"restored_{uuid.uuid4().hex[:8]}") if pg
              else f"sqlite:///{tmp_path / 'restored.db'}")
    dst = migrated_db(target, [], mode="development")
    restore(dst.engine, tmp_path / "b.bak", key)
    w = BatchWriter(dst, dst.settings)
    w.write([msg(result(now, counter=11, signature=SIG))])
    with dst.session() as s:
        assert s.scalar(select(SignedCounter.result_id).where(SignedCounter.counter == 11)) == signed.result_id
        assert s.scalar(text("SELECT count(*) FROM verification_results")) == 2
        assert "counter_reuse" in s.scalar(select(DeadLetter.reason))
        if pg:  # each restored row in its month's partition
            assert s.scalar(text("SELECT tableoid::regclass::text FROM verification_results WHERE result_id = :r"),
                            {"r": signed.result_id}) == Month.of(now).table
    assert w.stats.stored == 0 and w.stats.dead_lettered == 1
    dst.dispose()


def test_one_counter_twice_in_one_batch(any_db, caplog):
    """Without a verifier (development) two results of one batch may carry one counter: the first
    is stored, the second is a replay, and the batch needs no retry message by message."""
    now = utcnow()
    a = result(now, counter=21, signature=SIG)
    b = result(now, id_at(now + timedelta(days=40)), counter=21, signature=SIG)
    w = BatchWriter(any_db, any_db.settings)
    w.write([msg(a), msg(b)])
    assert not [r for r in caplog.records if "isolating" in r.getMessage()]
    with any_db.session() as s:
        assert set(s.scalars(select(VerificationRecord.result_id))) == {a.result_id}
        [dead] = s.scalars(select(DeadLetter)).all()
    assert "counter_reuse" in dead.reason and w.stats.stored == 1 and w.stats.dead_lettered == 1
