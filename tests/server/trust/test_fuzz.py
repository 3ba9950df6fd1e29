"""Fuzzing: random and malformed MQTT payloads through edge.wire validation and the ResultVerifier
(pure, hypothesis), then a real broker -> IngestWorker(verifier) run where garbage is interleaved
with signed results: the worker survives, every valid result is stored once, every bad one is
dead-lettered."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from fpverify.edge import wire
from fpverify.edge.signing import ResultSigner
from fpverify.server.trust.verify import CAKeys, MemoryLedger, Rejection, ResultVerifier
from tests.server.trust.helpers import result

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10)


@pytest.fixture
def signed(pki):
    signer = ResultSigner.from_files(pki.key("desk-a"), "desk-a")
    return signer, ResultVerifier(CAKeys(pki.ca), MemoryLedger(), window=0)


def _through(payload: bytes, verifier: ResultVerifier) -> Rejection | None | str:
    """What the registry does with one payload; only ValidationError may come out of parsing."""
    try:
        r = wire.VerificationResult.model_validate_json(payload)
    except ValidationError:
        return "invalid"
    out = verifier.check(r, "fpverify/v1/devices/desk-a/results")
    assert out is None or isinstance(out, Rejection)
    if out is not None:
        assert out.reason and out.alert_kind in ("forged_result", "replayed_result", "revoked_device")
    return out


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(signed, payload):
    _through(payload, signed[1])


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(wire.VerificationResult.model_fields) + ["extra", ""]), json_values,
                       max_size=6))
def test_mutated_signed_result(signed, changes):
    signer, verifier = signed
    base = signer.sign_with_counter(result(), random.randint(1, 10**6)).model_dump(mode="json")
    mutated = base | changes
    out = _through(json.dumps(mutated).encode(), verifier)
    if mutated != base and any(base.get(k) != v for k, v in changes.items()):
        # any real change to a signed field must be caught (by validation or by the verifier)
        if not (set(changes) == {"signature"} and changes["signature"] == base["signature"]):
            assert out is not None, changes


@FUZZ
@given(st.text(max_size=300), st.integers(min_value=-5, max_value=2**64))
def test_signature_and_counter_garbage(signed, sig, counter):
    signer, verifier = signed
    base = signer.sign_with_counter(result(), 7).model_dump(mode="json")
    out = _through(json.dumps(base | {"signature": sig, "counter": counter}).encode(), verifier)
    assert out is not None  # never accepted: the signature cannot match


@FUZZ
@given(st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()))
def test_station_side_messages_only_raise_validation_errors(payload):
    for model in (wire.TemplatesChanged, wire.TemplateFeed, wire.DeviceStatus):
        try:
            model.model_validate_json(payload)
        except ValidationError:
            pass


def test_signing_payload_is_stable_for_valid_results(signed):
    signer, _ = signed
    rnd = random.Random(7)
    for i in range(200):
        r = result(outcome=rnd.choice(["match", "no_match", "poor_quality"]), score=rnd.random(),
                   quality=rnd.randint(0, 100), detail="".join(chr(rnd.randint(32, 0x2FFF)) for _ in range(20)),
                   captured_at=datetime.fromtimestamp(rnd.uniform(1e9, 2e9), UTC))
        s = signer.sign_with_counter(r, i + 1)
        again = wire.VerificationResult.model_validate_json(s.model_dump_json())
        assert wire.signing_payload(again) == wire.signing_payload(s)


def test_garbage_through_a_real_broker_loses_nothing(pki, secure_broker, pg_url):
    """Interleave 300 malformed payloads with 60 signed results on desk-a's topic (as desk-a):
    all 60 stored exactly once, 300 dead-lettered, worker alive."""
    from fpverify.server.crud import devices as devices_crud
    from fpverify.server.db import Database
    from fpverify.server.ingest.consumer import IngestWorker
    from fpverify.server.models import Alert, DeadLetter, VerificationRecord
    from tests.server.helpers import make_settings
    from tests.server.trust.broker import connect

    settings_ = make_settings(pg_url, mqtt_port=secure_broker.port, mqtt_version="5",
                              mqtt_tls_ca=pki.ca.cert_path, mqtt_tls_cert=pki.crt("registry"),
                              mqtt_tls_key=pki.key("registry"))
    db = Database(settings=settings_)
    db.migrate()
    with db.session() as s:
        devices_crud.create_device(s, "test", "hosp-a", "desk-a", create_site_if_missing=True)
        s.commit()
    worker = IngestWorker(db, settings_, verifier=ResultVerifier.for_registry(pki.dir)).start()
    dev = connect(secure_broker.host, secure_broker.port, pki.crt("desk-a"), pki.key("desk-a"),
                  pki.ca.cert_path, "desk-a")
    signer = ResultSigner.from_files(pki.key("desk-a"), "desk-a")
    rnd = random.Random(1234)
    try:
        assert worker.wait_ready(30)
        good = [signer.sign_with_counter(result(), i + 1) for i in range(60)]
        bad: list[bytes] = []
        for i in range(300):
            kind = i % 6
            if kind == 0:
                bad.append(rnd.randbytes(rnd.randint(0, 600)))
            elif kind == 1:
                bad.append(b'{"kind":"verification_result"' + rnd.randbytes(20))
            elif kind == 2:  # a valid signed result with one field flipped
                d = good[rnd.randrange(60)].model_dump(mode="json")
                d["score"] = round((d["score"] or 0) / 2, 6)
                bad.append(json.dumps(d).encode())
            elif kind == 3:
                bad.append(json.dumps({"x": "y" * rnd.randint(0, 3000)}).encode())
            elif kind == 4:  # unsigned
                bad.append(result().model_dump_json().encode())
            else:
                bad.append(b"\xff\xfe" + "人证卡".encode() * rnd.randint(1, 50))
        stream = [(True, g.model_dump_json().encode()) for g in good] + [(False, b) for b in bad]
        rnd.shuffle(stream)
        mids = [dev.publish("fpverify/v1/devices/desk-a/results", p) for _, p in stream]
        assert dev.wait(lambda: set(mids) <= set(dev.pubacks), 60)

        def n():
            with db.session() as s:
                return (s.scalar(select(func.count()).select_from(VerificationRecord)),
                        s.scalar(select(func.count()).select_from(DeadLetter)))
        deadline = time.monotonic() + 90
        while n() != (60, 300) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert n() == (60, 300), (n(), worker.stats)
        assert worker.running and worker.stats.last_error is None
        with db.session() as s:  # one alert per (device, kind) per minute, not 300
            kinds = sorted(s.scalars(select(Alert.kind).where(Alert.kind != "no_match")))
        assert kinds == ["forged_result"], kinds
        with db.session() as s:
            assert set(s.scalars(select(VerificationRecord.result_id))) == {g.result_id for g in good}
    finally:
        dev.close()
        worker.stop()
        db.dispose()
