"""One device counter, two registry processes: exactly one signed result is stored, the other is a
replay (dead letter + `replayed_result` alert). The unique (device_id, counter) index of migration
0005 decides; on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import insert, select

from fpverify.edge.signing import ResultSigner
from fpverify.server.db import Database
from fpverify.server.ingest.writer import BatchWriter, Message
from fpverify.server.models import Alert, DeadLetter, VerificationRecord, utcnow
from fpverify.server.models.results import record_row
from fpverify.server.trust.verify import ResultVerifier
from tests.server.ingest.helpers import migrated_db
from tests.server.trust.helpers import result

TOPIC = "fpverify/v1/devices/desk-a/results"


@pytest.fixture
def race(any_url, pki):
    db = migrated_db(any_url, ["desk-a"], site="hosp-a")
    yield db, ResultSigner.from_files(pki.key("desk-a"), "desk-a"), pki.dir
    db.dispose()


def msg(r) -> Message:
    return Message(TOPIC, r.model_dump_json().encode(), 0, 1)


def table(db: Database, model) -> list:
    with db.session() as s:
        return list(s.scalars(select(model)))


def test_counter_stored_meanwhile_by_another_process_is_a_replay(race):
    """The interleaving the index exists for: writer B has verified counter 5 against what had
    committed, then the same counter is stored for another result before B inserts. On PostgreSQL
    that is another connection (another process) committing; SQLite serialises writers from BEGIN,
    so the state can only arise inside B's own transaction, and is made there."""
    db, signer, ca_dir = race
    b = BatchWriter(db, db.settings, ResultVerifier.for_registry(ca_dir))
    first, mine = signer.sign_with_counter(result(), 5), signer.sign_with_counter(result(), 5)
    other = Database(settings=db.settings)
    check = b.verifier.check

    def check_then_lose_the_race(r, topic=None, ledger=None):
        rej = check(r, topic, ledger)
        assert rej is None  # B sees counter 5 free
        row = record_row(first, utcnow())
        if db.engine.dialect.name == "sqlite":
            ledger.s.execute(insert(VerificationRecord), [row])
        else:
            with other.session() as s2:
                s2.execute(insert(VerificationRecord), [row])
                s2.commit()
        return rej

    b.verifier.check = check_then_lose_the_race
    try:
        b.write([msg(mine)])
    finally:
        other.dispose()
    assert {r.result_id for r in table(db, VerificationRecord)} == {first.result_id}
    [dead] = table(db, DeadLetter)
    assert "counter_reuse" in dead.reason and str(mine.result_id) in dead.payload.decode()
    [alert] = [a for a in table(db, Alert) if a.kind != "no_match"]
    assert alert.kind == "replayed_result" and alert.device_id == "desk-a" and "counter 5" in alert.comment
    assert b.stats.stored == 0 and b.stats.dead_lettered == 1 and b.stats.duplicates == 0
    # the winner delivered again is a plain duplicate, not a replay
    b.verifier.check = check
    b.write([msg(first)])
    assert b.stats.duplicates == 1 and len(table(db, DeadLetter)) == 1


def test_two_writers_racing_on_each_counter_store_exactly_one(race):
    """Two ingest processes (two Databases, threads released together) each get a different result
    signed with the same counter, 12 counters in a row: one of each pair is stored, the other is
    dead-lettered as counter_reuse, and the office gets the replay alert."""
    db, signer, ca_dir = race
    dbs = [db, Database(settings=db.settings)]
    writers = [BatchWriter(d, d.settings, ResultVerifier.for_registry(ca_dir)) for d in dbs]
    rounds = 12
    pairs = [(signer.sign_with_counter(result(), n), signer.sign_with_counter(result(), n))
             for n in range(1, rounds + 1)]
    errors: list[BaseException] = []

    def run(i: int, gate: threading.Barrier) -> None:
        try:
            for pair in pairs:
                gate.wait(30)
                writers[i].write([msg(pair[i])])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            gate.abort()

    gate = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(i, gate)) for i in (0, 1)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        dbs[1].dispose()
    assert not errors, errors
    stored = {r.result_id: r.counter for r in table(db, VerificationRecord)}
    assert sorted(stored.values()) == list(range(1, rounds + 1))  # one per counter
    for a, b in pairs:
        assert (a.result_id in stored) != (b.result_id in stored)
    dead = table(db, DeadLetter)
    assert len(dead) == rounds and all("counter_reuse" in d.reason for d in dead), [d.reason for d in dead]
    assert "replayed_result" in {a.kind for a in table(db, Alert)}
    assert sum(w.stats.stored for w in writers) == rounds and sum(w.stats.dead_lettered for w in writers) == rounds
