"""Signed results: station-side signing and counter (real SQLCipher store), registry-side checks."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from fpverify.edge import signing as edge_signing
from fpverify.edge.cache import Store, new_key
from fpverify.edge.signing import CounterStore, ResultSigner, SigningError
from fpverify.edge.wire import VerificationResult, signing_payload
from fpverify.server.trust import verify as trust
from fpverify.server.trust.verify import CAKeys, MemoryLedger, ResultVerifier, StaticKeys
from tests.server.trust.helpers import SigningOutbox, result


@pytest.fixture
def signer_a(pki):
    return ResultSigner.from_files(pki.key("desk-a"), "desk-a", pki.crt("desk-a"))


@pytest.fixture
def verifier(pki):
    return ResultVerifier(CAKeys(pki.ca), MemoryLedger())


def _wire(r: VerificationResult) -> VerificationResult:
    """What the registry sees: the JSON the station published, parsed again."""
    return VerificationResult.model_validate_json(r.model_dump_json())


def _alter(r: VerificationResult, **update) -> VerificationResult:
    """An attacker's edit of the published JSON, validated like the registry validates it."""
    return VerificationResult.model_validate({**r.model_dump(mode="json"), **{
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in update.items()}})


def test_scheme_constant_is_the_same_on_both_sides():
    assert trust.SIG_PREFIX == edge_signing.SIG_PREFIX


def test_valid_result_verifies_after_the_wire(pki, signer_a, verifier):
    for outcome, extra in (("match", {}), ("no_match", {"detail": "ünïcode détail 人证卡"}),
                           ("delegate_match", {"delegate_id": "D-1"}), ("sensor_error", {"score": None})):
        r = signer_a.sign_with_counter(result(outcome=outcome, **extra), 1 + len(verifier.ledger.used))
        assert r.signature.startswith("ecdsa-p256-sha256:") and len(r.signature) <= 1024
        assert verifier.check(_wire(r), "fpverify/v1/devices/desk-a/results") is None
    # non-UTC time zones survive the round trip too
    r = signer_a.sign_with_counter(result(captured_at=datetime.now(UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=8)))), 99)
    assert signing_payload(_wire(r)) == signing_payload(r)
    assert verifier.check(_wire(r)) is None


@pytest.mark.parametrize("field,value", [
    ("outcome", "match"), ("card_number", "CARD-0002"), ("score", 0.99), ("counter", 1000),
    ("captured_at", datetime(2020, 1, 1, tzinfo=UTC)), ("site_id", "hosp-b"), ("detail", "added"),
    ("operator_id", "op-9"), ("attempts", 2), ("threshold", None)])
def test_altered_field_fails(pki, signer_a, verifier, field, value):
    signed = signer_a.sign_with_counter(result(), 5)
    rej = verifier.check(_alter(signed, **{field: value}))
    assert rej is not None and rej.code in ("bad_signature", "wrong_site"), rej
    assert rej.alert_kind == "forged_result"


def test_other_devices_key_and_garbage_signatures_fail(pki, verifier):
    signer_b = ResultSigner.from_files(pki.key("desk-b"), "desk-b")
    with pytest.raises(SigningError):
        signer_b.sign_with_counter(result(device_id="desk-a"), 1)  # refuses to sign for another device
    # b's key, result claiming to be a's: signature checked against a's certificate -> fails
    forged = ResultSigner(signer_b.key, "desk-a").sign_with_counter(result(), 1)
    assert verifier.check(_wire(forged)).code == "bad_signature"
    good = ResultSigner.from_files(pki.key("desk-a"), "desk-a").sign_with_counter(result(), 2)
    for sig in ("", "ecdsa-p256-sha256:", "ecdsa-p256-sha256:!!!", "ed25519:AAAA", "ecdsa-p256-sha256:AAAA",
                good.signature[:-8] + "AAAAAAA=", "x" * 1024):
        r = _alter(good, signature=sig)
        rej = verifier.check(r)
        assert rej is not None and rej.code in ("bad_signature", "unsigned", "malformed_signature"), (sig, rej)


def test_unknown_device_and_unsigned(pki, signer_a, verifier):
    r = result(device_id="desk-zz")
    key_of_a = ResultSigner(signer_a.key, "desk-zz")
    assert verifier.check(key_of_a.sign_with_counter(r, 1)).code == "no_certificate"
    assert verifier.check(result()).code == "unsigned"
    lenient = ResultVerifier(CAKeys(pki.ca), require_signature=False)
    assert lenient.check(result()) is None  # stations not yet provisioned, during a roll-out
    assert lenient.check(signer_a.sign_with_counter(result(), 1)) is None  # signed ones still checked
    assert lenient.check(_alter(signer_a.sign_with_counter(result(), 2), outcome="match")).code == "bad_signature"


def test_wrong_site_and_topic(pki, signer_a, verifier):
    assert verifier.check(signer_a.sign_with_counter(result(site_id="hosp-b"), 1)).code == "wrong_site"
    r = signer_a.sign_with_counter(result(), 2)
    assert verifier.check(r, "fpverify/v1/devices/desk-b/results").code == "topic_mismatch"


def test_replay_and_counter_reuse(pki, signer_a):
    strict = ResultVerifier(CAKeys(pki.ca), window=0)
    r5 = signer_a.sign_with_counter(result(), 5)
    assert strict.check(_wire(r5)) is None
    assert strict.check(_wire(r5)) is None  # the same result again: idempotent redelivery
    other5 = signer_a.sign_with_counter(result(), 5)  # e.g. a station store restored from backup
    rej = strict.check(_wire(other5))
    assert rej.code == "counter_reuse" and rej.alert_kind == "replayed_result"
    assert strict.check(_wire(signer_a.sign_with_counter(result(), 4))).code == "replay"  # strict: <= last
    assert strict.check(_wire(signer_a.sign_with_counter(result(), 6))) is None
    # windowed (default): a genuine late result inside the window is accepted, far behind is not
    windowed = ResultVerifier(CAKeys(pki.ca), window=10)
    assert windowed.check(_wire(signer_a.sign_with_counter(result(), 100))) is None
    assert windowed.check(_wire(signer_a.sign_with_counter(result(), 95))) is None
    assert windowed.check(_wire(signer_a.sign_with_counter(result(), 90))).code == "replay"
    assert windowed.check(_wire(signer_a.sign_with_counter(result(), 95))).code == "counter_reuse"


def test_revoked_device_results_are_refused(pki, verifier):
    signer_r = ResultSigner.from_files(pki.key("desk-r"), "desk-r", pki.crt("desk-r"))
    before = signer_r.sign_with_counter(result(device_id="desk-r"), 1)
    assert verifier.check(_wire(before)) is None
    pki.ca.revoke_device("desk-r", "key_compromise")
    rej = verifier.check(_wire(signer_r.sign_with_counter(result(device_id="desk-r"), 2)))  # CAKeys re-reads
    assert rej.code == "revoked" and rej.alert_kind == "revoked_device"
    # re-provisioned: the new key works, the old one does not
    key, cert = pki.ca.issue_device("desk-r", "hosp-a")
    assert verifier.check(ResultSigner(key, "desk-r", cert).sign_with_counter(result(device_id="desk-r"), 3)) is None
    assert verifier.check(signer_r.sign_with_counter(result(device_id="desk-r"), 4)).code == "revoked"


def test_captured_outside_certificate_validity(pki, signer_a):
    v = ResultVerifier(StaticKeys({"desk-a": [signer_a.certificate]}))
    old = signer_a.sign_with_counter(result(captured_at=datetime.now(UTC) - timedelta(days=2)), 1)
    assert v.check(old).code == "not_yet_valid"
    late = signer_a.sign_with_counter(result(captured_at=datetime.now(UTC) + timedelta(days=900)), 2)
    assert v.check(late).code == "expired"


def test_rejections_call_the_alert_callback(pki, signer_a):
    seen = []
    v = ResultVerifier(CAKeys(pki.ca), on_reject=lambda rej, r, t: seen.append((rej.alert_kind, r.result_id)))
    r = signer_a.sign_with_counter(result(), 1)
    assert v(_wire(r), None) is None
    bad = _alter(r, outcome="match")
    reason = v(bad, "fpverify/v1/devices/desk-a/results")
    assert reason.startswith("bad_signature:")
    assert seen == [("forged_result", r.result_id)]

    def broken(*a):
        raise RuntimeError("alert table down")
    v.on_reject = broken
    assert v(bad, None).startswith("bad_signature")  # still rejected, not raised


# --- the counter in the station's encrypted store ----------------------------------------------

def test_counter_is_monotonic_transactional_and_survives_restarts(tmp_path, pki, signer_a):
    key = new_key()
    path = tmp_path / "station.db"
    store = Store.open(path, key)
    outbox = SigningOutbox(store, signer_a)
    for _ in range(3):
        outbox.add(result())
    assert [r.counter for r in outbox.signed] == [1, 2, 3]
    # a failing insert (duplicate result id) rolls the counter back with it
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        outbox.add(outbox.signed[0].model_copy(update={"counter": None, "signature": None}))
    store.close()
    store = Store.open(path, key)
    outbox = SigningOutbox(store, ResultSigner.from_files(pki.key("desk-a"), "desk-a"))
    outbox.add(result())
    assert outbox.signed[-1].counter == 4
    # every payload in the outbox verifies
    v = ResultVerifier(CAKeys(pki.ca))
    for p in outbox.pending(100):
        assert v.check(VerificationResult.model_validate_json(p.payload)) is None
    c = CounterStore(store._conn)
    with store.transaction() as db:
        assert c.advance_to(db, 2) == 4  # never backwards
        assert c.advance_to(db, 50) == 50
    store.close()
    # the counter is inside the encrypted file: not readable without the key
    assert b"trust_counter" not in path.read_bytes()


def test_key_file_checks(tmp_path, pki):
    loose = tmp_path / "loose.key"
    loose.write_bytes(pki.key("desk-a").read_bytes())
    os.chmod(loose, 0o644)
    with pytest.raises(SigningError, match="chmod 600"):
        ResultSigner.from_files(loose, "desk-a")
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"not a key")
    os.chmod(junk, 0o600)
    with pytest.raises(SigningError, match="PEM"):
        ResultSigner.from_files(junk, "desk-a")
    with pytest.raises(SigningError, match="does not belong"):
        ResultSigner.from_files(pki.key("desk-a"), "desk-a", pki.crt("desk-b"))
    with pytest.raises(SigningError, match="not device"):
        ResultSigner.from_files(pki.key("desk-a"), "desk-b", pki.crt("desk-a"))
    with pytest.raises(SigningError, match="cannot read"):
        ResultSigner.from_files(tmp_path / "missing.key", "desk-a")


def test_pki_files_are_private(pki):
    for p in list(pki.dir.rglob("*")) + list(pki.files.rglob("*")):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(pki.dir.stat().st_mode) == 0o700
