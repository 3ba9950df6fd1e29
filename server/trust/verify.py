"""Checking signed results at the registry: right key, not revoked, not a replay.

`ResultVerifier.check(result, topic, ledger)` returns None (accept) or a `Rejection` with a machine
code, the alert kind it deserves and a human reason. The ingest batch writer
(server/ingest/writer.py) calls it with a `SessionLedger` on its own transaction, dead-letters a
rejected message with "rejected: <reason>" and raises the alert in that same transaction: one
writer, so SQLite never waits on itself, and counter state is only ever what was committed with
an accepted result. `registry_verifier(settings)` is the production wiring.

Checks, in order:
1. the topic names the same device as the result (the broker's ACL already ties topics to CNs);
2. the result is signed (unless `require_signature=False`: the registry's demo and development
   modes, see `registry_verifier`);
3. the device has a certificate issued by our CA that is not revoked and was valid when the
   result was captured (`DeviceKeys`); its site (OU) is the result's site;
4. the ECDSA signature over `edge.wire.signing_payload(result)` verifies;
5. the counter: the same (device, counter) already stored under this result_id is an idempotent
   redelivery (accepted; the insert drops it); under another result_id it is a forgery, a cloned
   key or a station store restored from backup (`counter_reuse`); a counter more than `window`
   below the highest accepted one is a `replay`. `window=0` is the strict rule "counter must be
   above the last accepted one"; the default tolerates a little reordering (a station republishes
   a result the broker refused for a moment while later ones got through), because rejecting a
   genuine late result would hide it, which is worse than accepting it: its counter is still
   unique, so nothing can be replayed inside the window.
A message that fails any check never reaches the ledger, so it cannot move a device's counter.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fpverify.edge import wire  # the only module of edge the registry imports
from fpverify.server.trust.pki import CertificateAuthority, cert_site

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 1000
SIG_PREFIX = "ecdsa-p256-sha256:"  # the station's scheme (edge/signing.py; a test keeps both equal)
ALERT_KINDS = {
    "unsigned": "forged_result",
    "malformed_signature": "forged_result",
    "no_certificate": "forged_result",
    "wrong_site": "forged_result",
    "bad_signature": "forged_result",
    "topic_mismatch": "forged_result",
    "revoked": "revoked_device",
    "not_yet_valid": "forged_result",
    "expired": "forged_result",
    "replay": "replayed_result",
    "counter_reuse": "replayed_result",
}


@dataclass(frozen=True)
class Rejection:
    code: str  # a key of ALERT_KINDS
    reason: str

    @property
    def alert_kind(self) -> str:
        return ALERT_KINDS.get(self.code, "forged_result")

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


@dataclass(frozen=True)
class DeviceCert:
    cert: x509.Certificate
    revoked: bool
    revoked_reason: str | None = None


class DeviceKeys(Protocol):
    def certificates(self, device_id: str) -> list[DeviceCert]: ...


class CAKeys:
    """Device certificates from the registry's CA folder (server/pki.py); re-read when it changes,
    so a revocation by the CLI applies to the next message without a restart."""

    def __init__(self, ca: CertificateAuthority | str | Path) -> None:
        self.ca = ca if isinstance(ca, CertificateAuthority) else CertificateAuthority(ca)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._cache: dict[str, list[DeviceCert]] = {}

    def _fresh(self) -> None:
        try:
            st = self.ca.index_path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._cache.clear()
            self._stamp = stamp

    def certificates(self, device_id: str) -> list[DeviceCert]:
        with self._lock:
            self._fresh()
            hit = self._cache.get(device_id)
            if hit is None:
                hit = [DeviceCert(cert, row.revoked, row.reason)
                       for row, cert in self.ca.certificates(device_id)
                       if row.kind == "device" and self.ca.issued_by_me(cert)]
                self._cache[device_id] = hit
            return hit


class StaticKeys:
    """Certificates given in memory (tests, or a registry fed from another inventory)."""

    def __init__(self, certs: dict[str, list[x509.Certificate]] | None = None,
                 revoked_serials: set[int] | None = None) -> None:
        self.certs = certs or {}
        self.revoked_serials = revoked_serials if revoked_serials is not None else set()

    def certificates(self, device_id: str) -> list[DeviceCert]:
        return [DeviceCert(c, c.serial_number in self.revoked_serials) for c in self.certs.get(device_id, [])]


class CounterLedger(Protocol):
    def lookup(self, device_id: str, counter: int) -> uuid.UUID | None: ...
    def highest(self, device_id: str) -> int | None: ...
    def record(self, device_id: str, counter: int, result_id: uuid.UUID) -> None: ...


class MemoryLedger:
    """Counters accepted so far, in memory (a verifier used on its own, e.g. in tests)."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, int], uuid.UUID] = {}
        self.top: dict[str, int] = {}

    def lookup(self, device_id: str, counter: int) -> uuid.UUID | None:
        return self.used.get((device_id, counter))

    def highest(self, device_id: str) -> int | None:
        return self.top.get(device_id)

    def record(self, device_id: str, counter: int, result_id: uuid.UUID) -> None:
        self.used[(device_id, counter)] = result_id
        if counter > self.top.get(device_id, -1):
            self.top[device_id] = counter


class SessionLedger:
    """Counters of stored *signed* results, read through the ingest batch's own session, plus the
    ones accepted earlier in the same batch. It lives and dies with that transaction: nothing a
    rolled-back or rejected message did survives, and every registry process reads the same state.
    Unsigned rows (demo/development mode) never count: an unverified counter must not advance one."""

    def __init__(self, session) -> None:
        self.s = session
        self.used: dict[tuple[str, int], uuid.UUID] = {}
        self.top: dict[str, int | None] = {}

    def lookup(self, device_id: str, counter: int) -> uuid.UUID | None:
        hit = self.used.get((device_id, counter))
        if hit is not None:
            return hit
        from sqlalchemy import select

        from fpverify.server.models import VerificationRecord as VR

        return self.s.scalar(select(VR.result_id).where(
            VR.device_id == device_id, VR.counter == counter, VR.signature.is_not(None)).limit(1))

    def highest(self, device_id: str) -> int | None:
        if device_id not in self.top:
            from sqlalchemy import func, select

            from fpverify.server.models import VerificationRecord as VR

            self.top[device_id] = self.s.scalar(select(func.max(VR.counter)).where(
                VR.device_id == device_id, VR.signature.is_not(None)))
        return self.top[device_id]

    def record(self, device_id: str, counter: int, result_id: uuid.UUID) -> None:
        self.used[(device_id, counter)] = result_id
        top = self.highest(device_id)
        if top is None or counter > top:
            self.top[device_id] = counter


RejectCallback = Callable[[Rejection, wire.VerificationResult, str | None], None]


def verify_signature(public_key, result: wire.VerificationResult) -> bool:
    """True when `result.signature` is a valid ECDSA P-256 signature by `public_key` over
    `wire.signing_payload(result)`; False for anything else, malformed input included."""
    sig = result.signature
    if not sig or not sig.startswith(SIG_PREFIX) or not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        der = base64.b64decode(sig[len(SIG_PREFIX):], validate=True)
        public_key.verify(der, wire.signing_payload(result), ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


class ResultVerifier:
    def __init__(self, keys: DeviceKeys, ledger: CounterLedger | None = None, window: int = DEFAULT_WINDOW,
                 require_signature: bool = True, on_reject: RejectCallback | None = None) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.keys = keys
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.window = window
        self.require_signature = require_signature
        self.on_reject = on_reject
        self._lock = threading.Lock()  # check-then-record of counters is one step
        self.rejected: dict[str, int] = {}

    @classmethod
    def for_registry(cls, ca_dir: str | Path, window: int = DEFAULT_WINDOW,
                     require_signature: bool = True) -> ResultVerifier:
        """Certificates from the CA folder; the ingest writer passes the ledger of its transaction."""
        return cls(CAKeys(ca_dir), window=window, require_signature=require_signature)

    def __call__(self, result: wire.VerificationResult, topic: str | None = None) -> str | None:
        rej = self.check(result, topic)
        return None if rej is None else str(rej)

    def check(self, result: wire.VerificationResult, topic: str | None = None,
              ledger: CounterLedger | None = None) -> Rejection | None:
        """None to accept, else why not. `ledger` (default: this verifier's own) is where counters
        are looked up and where an accepted one is recorded."""
        rej = self._check(result, topic, self.ledger if ledger is None else ledger)
        if rej is not None:
            self.rejected[rej.code] = self.rejected.get(rej.code, 0) + 1
            log.warning("rejected result %s from %s: %s", result.result_id, result.device_id, rej)
            if self.on_reject is not None:
                try:
                    self.on_reject(rej, result, topic)
                except Exception:  # noqa: BLE001 - an alert failure must not stop the dead-lettering
                    log.exception("could not raise the alert for a rejected result")
        return rej

    def _check(self, r: wire.VerificationResult, topic: str | None, ledger: CounterLedger) -> Rejection | None:
        if topic is not None and wire.Topics.device_of(topic) != r.device_id:
            return Rejection("topic_mismatch", f"result of {r.device_id!r} published on {topic[:200]!r}")
        if r.signature is None:
            if self.require_signature:
                return Rejection("unsigned", "the result carries no signature")
            return None
        if r.counter is None:
            return Rejection("malformed_signature", "a signed result must carry its counter")
        if not r.signature.startswith(SIG_PREFIX):
            return Rejection("malformed_signature", f"unknown signature scheme (expected {SIG_PREFIX!r})")
        certs = self.keys.certificates(r.device_id)
        if not certs:
            return Rejection("no_certificate", f"no certificate issued to device {r.device_id!r}")
        at = r.captured_at.astimezone(dt.UTC)
        signed_by = next((c for c in certs if verify_signature(c.cert.public_key(), r)), None)
        if signed_by is None:
            return Rejection("bad_signature", "the signature does not verify with the device's certificate "
                                              "(altered result or wrong key)")
        if signed_by.revoked:
            return Rejection("revoked", f"the device certificate {signed_by.cert.serial_number:x} is revoked"
                                        + (f" ({signed_by.revoked_reason})" if signed_by.revoked_reason else ""))
        if at < signed_by.cert.not_valid_before_utc:
            return Rejection("not_yet_valid", "captured before the device certificate was issued")
        if at > signed_by.cert.not_valid_after_utc:
            return Rejection("expired", "captured after the device certificate expired")
        site = cert_site(signed_by.cert)
        if site is not None and site != r.site_id:
            return Rejection("wrong_site", f"result says site {r.site_id!r}; the device belongs to {site!r}")
        with self._lock:
            used = ledger.lookup(r.device_id, r.counter)
            if used is not None:
                if used == r.result_id:
                    return None  # the same result delivered again: the insert drops it
                return Rejection("counter_reuse", f"counter {r.counter} already used by result {used} "
                                                  "(cloned key, restored station store or forgery)")
            top = ledger.highest(r.device_id)
            if top is not None and r.counter <= top - self.window:
                return Rejection("replay", f"counter {r.counter} is not above the last accepted {top}"
                                 + (f" minus the window {self.window}" if self.window else ""))
            ledger.record(r.device_id, r.counter, r.result_id)
        return None


def registry_verifier(settings) -> ResultVerifier | None:
    """The verifier the registry's settings call for. Production (`mode`) requires signed results:
    with no CA folder configured nothing can be verified, so every result is refused (and said so
    at start-up) rather than accepted unchecked. Demo and development accept unsigned results and
    still check signed ones when a CA folder is given; with none, there is nothing to check."""
    required = not settings.relaxed  # production
    if settings.ca_dir is not None:
        return ResultVerifier.for_registry(settings.ca_dir, settings.replay_window, require_signature=required)
    if required:
        log.error("mode=production requires signed results but FPVERIFY_CA_DIR is not set: every result "
                  "will be dead-lettered. Set FPVERIFY_CA_DIR, or FPVERIFY_MODE=development for unsigned tests.")
        return ResultVerifier(StaticKeys(), require_signature=True)
    return None
