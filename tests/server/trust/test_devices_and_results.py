"""Issue 14, "Devices and results", tried through the shipped Mosquitto config (mutual TLS, ACL) into
the registry's ingest on PostgreSQL (and SQLite for the demo's lock): disabled and retired devices,
signed results required outside demo/development mode, failed messages that must not move a
device's counter, results naming another device, and the verifier sharing the ingest transaction."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from sqlalchemy import select

from fpverify.edge.signing import ResultSigner
from fpverify.server.crud import devices as devices_crud
from fpverify.server.ingest.consumer import IngestWorker
from fpverify.server.models import Alert, DeadLetter, VerificationRecord
from tests.helpers import ROOT
from tests.server.trust.broker import connect
from tests.server.trust.helpers import counts, registry_db, result, wait_until

TOPIC = "fpverify/v1/devices/{}/results"


def publisher(pki, broker, device: str):
    c = connect(broker.host, broker.port, pki.crt(device), pki.key(device), pki.ca.cert_path, device)
    assert c.connack and not c.connack[0].is_failure, c.disconnects

    def send(*results) -> None:
        mids = [c.publish(TOPIC.format(device), r if isinstance(r, (str, bytes)) else r.model_dump_json())
                for r in results]
        assert c.wait(lambda: set(mids) <= set(c.pubacks)), "no PUBACK"
    return c, send


def signer(pki, device: str) -> ResultSigner:
    return ResultSigner.from_files(pki.key(device), device)


def reasons(db) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)))


def alerts(db) -> list[tuple[str, str]]:
    with db.session() as s:
        return sorted((a.kind, a.device_id) for a in s.scalars(select(Alert).where(Alert.kind != "no_match")))


def stored(db) -> set:
    with db.session() as s:
        return set(s.scalars(select(VerificationRecord.result_id)))


def test_disabled_or_retired_device_refused_at_once_by_another_process(pg_url, pki, secure_broker, tmp_path):
    """The ingest runs in its own process; the disable and the retirement commit here (as the API
    would; the broker is not reloaded, both stay connected). The results sent right after are
    refused, dead-lettered and alerted; re-enabling works as promptly (no cache either way)."""
    db = registry_db(pg_url, secure_broker, pki)
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.server.trust.ingest_proc", pg_url, str(secure_broker.port),
                             str(pki.dir), str(pki.crt("registry")), str(pki.key("registry"))], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)
    a, send_a = publisher(pki, secure_broker, "desk-a")
    b, send_b = publisher(pki, secure_broker, "desk-b")
    try:
        assert proc.stdout.readline().strip() == "ready", log.read_text()[-2000:]
        sa, sb = signer(pki, "desk-a"), signer(pki, "desk-b")
        send_a(sa.sign_with_counter(result("desk-a"), 1))
        send_b(sb.sign_with_counter(result("desk-b"), 1))
        wait_until(lambda: counts(db)[0] == 2, 30, "both devices' first results")
        with db.session() as s:  # what POST /devices/{id}/disable and /retire commit
            devices_crud.set_disabled(s, "admin", "desk-a", True)
            devices_crud.retire_device(s, "admin", "desk-b")
            s.commit()
        pki.ca.revoke_device("desk-b", "cessation_of_operation")  # the route's second step
        late_a, late_b = sa.sign_with_counter(result("desk-a"), 2), sb.sign_with_counter(result("desk-b"), 2)
        send_a(late_a)
        send_b(late_b)
        wait_until(lambda: counts(db)[1] == 2, 30, "2 dead letters")
        assert not {late_a.result_id, late_b.result_id} & stored(db)
        assert alerts(db) == [("disabled_device", "desk-a"), ("retired_device", "desk-b")]
        rs = reasons(db)
        assert any("'desk-a' (disabled)" in r for r in rs) and any("'desk-b' (retired)" in r for r in rs), rs
        with db.session() as s:
            devices_crud.set_disabled(s, "admin", "desk-a", False)
            s.commit()
        again = sa.sign_with_counter(result("desk-a"), 3)
        send_a(again)
        wait_until(lambda: again.result_id in stored(db), 30, "desk-a accepted again once re-enabled")
    finally:
        a.close()
        b.close()
        proc.terminate()
        proc.wait(30)
        db.dispose()


def test_signed_results_required_in_production_and_failures_never_move_counters(pg_url, pki, secure_broker):
    db = registry_db(pg_url, secure_broker, pki)
    production = db.settings.model_copy(update={"ca_dir": pki.dir})
    assert production.mode == "production"
    worker = IngestWorker(db, production).start()  # the verifier comes from the settings
    c, send = publisher(pki, secure_broker, "desk-a")
    sa = signer(pki, "desk-a")
    try:
        assert worker.wait_ready(30)
        g1 = sa.sign_with_counter(result(), 1)
        send(g1)
        wait_until(lambda: counts(db)[0] == 1, 30, "a signed result stored")
        # failures naming desk-a with high counters: unsigned, a bad signature, and a genuine
        # signature over a result refused for its site
        unsigned = result(counter=900_000)
        bad = sa.sign_with_counter(result(), 5000).model_dump(mode="json") | {"outcome": "match"}
        wrong_site = sa.sign_with_counter(result(site_id="hosp-b"), 5001)
        send(unsigned, json.dumps(bad), wrong_site)
        wait_until(lambda: counts(db)[1] == 3, 30, "3 dead letters")
        rs = reasons(db)
        assert "unsigned" in rs[0] and "bad_signature" in rs[1] and "wrong_site" in rs[2], rs
        # none of them moved desk-a's counter: 2 is not a replay of 5001, and 5001 is still unused
        g2, g3 = sa.sign_with_counter(result(), 2), sa.sign_with_counter(result(), 5001)
        send(g2, g3)
        wait_until(lambda: counts(db)[0] == 3, 30, "genuine results after the failures")
        assert stored(db) == {g1.result_id, g2.result_id, g3.result_id} and counts(db)[1] == 3
        assert alerts(db) == [("forged_result", "desk-a")]  # one per device and kind a minute
        worker.stop()

        # development mode: unsigned results are accepted, but their counter is not believed
        dev = production.model_copy(update={"mode": "development"})
        worker = IngestWorker(db, dev).start()
        assert worker.wait_ready(30)
        loose = result(counter=10**9)
        send(loose)
        wait_until(lambda: loose.result_id in stored(db), 30, "unsigned result accepted in development mode")
        g4 = sa.sign_with_counter(result(), 5002)  # above 5001, far below the unsigned 10**9
        send(g4)
        wait_until(lambda: g4.result_id in stored(db), 30, "a signed result after an unsigned high counter")
        assert counts(db)[1] == 3
    finally:
        c.close()
        worker.stop()
        db.dispose()


def test_result_naming_another_device_raises_forged_result(pg_url, pki, secure_broker):
    db = registry_db(pg_url, secure_broker, pki)
    worker = IngestWorker(db, db.settings.model_copy(update={"ca_dir": pki.dir})).start()
    c, send = publisher(pki, secure_broker, "desk-a")
    try:
        assert worker.wait_ready(30)
        # desk-a's certificate, desk-a's topic, a body (signed by desk-b's key) claiming desk-b
        send(signer(pki, "desk-b").sign_with_counter(result("desk-b"), 1))
        wait_until(lambda: counts(db)[1] == 1, 30, "dead letter")
        assert "does not match the topic" in reasons(db)[0] and counts(db)[0] == 0
        assert alerts(db) == [("forged_result", "desk-a")]
        with db.session() as s:
            a = s.scalars(select(Alert)).one()
            assert a.result_id is None and "desk-b" in a.comment
    finally:
        c.close()
        worker.stop()
        db.dispose()


def test_sqlite_with_a_ca_first_signed_result_does_not_wait_on_the_database(pki, secure_broker, tmp_path):
    """The demo's setup: SQLite and a CA folder. The verifier's counter reads and its alerts go
    through the ingest batch's transaction; a second connection would wait 30 s on the lock."""
    db = registry_db(f"sqlite:///{tmp_path / 'registry.db'}", secure_broker, pki)
    worker = IngestWorker(db, db.settings.model_copy(update={"ca_dir": pki.dir})).start()
    c, send = publisher(pki, secure_broker, "desk-a")
    sa = signer(pki, "desk-a")
    try:
        assert worker.wait_ready(30)
        t0 = time.monotonic()
        send(sa.sign_with_counter(result(), 1))
        wait_until(lambda: counts(db)[0] == 1, 30, "first signed result")
        first = time.monotonic() - t0
        t0 = time.monotonic()
        send(sa.sign_with_counter(result(site_id="hosp-b"), 2))  # refused: dead letter + alert
        wait_until(lambda: counts(db)[1] == 1 and alerts(db), 30, "rejection")
        rejected = time.monotonic() - t0
        assert first < 5 and rejected < 5, (first, rejected)
        assert worker.stats.db_errors == 0 and worker.stats.last_error is None
    finally:
        c.close()
        worker.stop()
        db.dispose()
