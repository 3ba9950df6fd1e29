"""End to end with real parts: provisioned stations (SQLCipher outbox, signed results, MqttLink over
mutual TLS) -> the shipped Mosquitto config -> the registry's IngestWorker with the ResultVerifier
-> PostgreSQL. A valid result is stored once; altered, replayed and unsigned ones are dead-lettered
and alerted."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from fpverify.edge.signing import ResultSigner
from fpverify.server.ingest.consumer import IngestWorker
from fpverify.server.models import DeadLetter, VerificationRecord
from fpverify.server.trust.verify import ResultVerifier
from tests.server.trust.broker import connect
from tests.server.trust.helpers import Station, counts, registry_db, result, wait_until


def test_signed_results_stored_once_forgeries_dead_lettered_and_alerted(pg_url, pki, secure_broker, tmp_path):
    db = registry_db(pg_url, secure_broker, pki)
    verifier = ResultVerifier.for_registry(pki.dir)
    worker = IngestWorker(db, db.settings, verifier=verifier).start()
    a = Station(pki, secure_broker, tmp_path, "desk-a")
    try:
        assert worker.wait_ready(30), secure_broker.log()[-2000:]
        a.link.start()
        sent = a.record(10)
        assert a.link.wait_drained(60), a.link.last_error
        wait_until(lambda: counts(db)[0] == 10, 60, "10 results stored")
        with db.session() as s:
            stored = {r.result_id: r for r in s.scalars(select(VerificationRecord))}
        assert set(stored) == {r.result_id for r in sent}
        assert all(stored[r.result_id].counter == r.counter and stored[r.result_id].signature == r.signature
                   for r in sent)
        assert counts(db)[2] == ["no_match"] * 10  # the results themselves were no_match: alerts as usual

        # An attacker holding desk-a's certificate (or the broker path) tries the payload tricks:
        evil = connect(secure_broker.host, secure_broker.port, a.cfg.mqtt.cert_file, a.cfg.mqtt.key_file,
                       pki.ca.cert_path, "desk-a-2")
        topic = "fpverify/v1/devices/desk-a/results"
        replay = sent[3].model_dump_json()  # exact redelivery: idempotent, stored once
        altered = sent[4].model_dump(mode="json") | {"outcome": "match", "score": 0.99}
        reused = ResultSigner.from_files(a.cfg.mqtt.key_file, "desk-a").sign_with_counter(result(), sent[5].counter)
        unsigned = result().model_dump_json()
        mids = [evil.publish(topic, p) for p in (replay, json.dumps(altered), reused.model_dump_json(), unsigned)]
        assert evil.wait(lambda: set(mids) <= set(evil.pubacks))
        wait_until(lambda: counts(db)[1] == 3, 60, "3 dead letters")
        time.sleep(1.0)  # let a wrongly accepted message land if there were one
        n, dead, alerts = counts(db)
        assert n == 10, "a forged or replayed result was stored"
        assert alerts.count("forged_result") == 1 and alerts.count("replayed_result") == 1, alerts
        with db.session() as s:
            reasons = sorted(d.reason for d in s.scalars(select(DeadLetter)))
            row = s.get(VerificationRecord, sent[4].result_id)
            assert row.outcome == "no_match"  # the stored original is untouched
        assert any("bad_signature" in r for r in reasons)
        assert any("counter_reuse" in r for r in reasons)
        assert any("unsigned" in r for r in reasons)
        evil.close()

        # the station goes on; its later results still verify and are stored
        more = a.record(5)
        assert a.link.wait_drained(60)
        wait_until(lambda: counts(db)[0] == 15, 60, "15 results stored")
        assert max(r.counter for r in more) == 15
    finally:
        a.close()
        worker.stop()
        db.dispose()


def test_revoked_station_results_refused_by_registry(pg_url, pki, secure_broker, tmp_path):
    """Revocation reaches the registry at once (before the broker reloads its CRL)."""
    db = registry_db(pg_url, secure_broker, pki)
    worker = IngestWorker(db, db.settings, verifier=ResultVerifier.for_registry(pki.dir)).start()
    b = Station(pki, secure_broker, tmp_path, "desk-b")
    try:
        assert worker.wait_ready(30)
        b.link.start()
        b.record(2)
        assert b.link.wait_drained(60)
        wait_until(lambda: counts(db)[0] == 2, 60, "2 stored")
        pki.ca.revoke_device("desk-b", "key_compromise")  # broker not reloaded yet: still connected
        b.record(1)
        assert b.link.wait_drained(60)
        wait_until(lambda: counts(db)[1] == 1, 60, "dead letter")
        n, dead, alerts = counts(db)
        assert n == 2 and "revoked_device" in alerts
    finally:
        b.close()
        worker.stop()
        db.dispose()
