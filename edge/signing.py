"""Signed results: each VerificationResult carries a per-device counter and an ECDSA P-256 signature.

Why ECDSA P-256 with the key of the station's TLS client certificate (and not a separate Ed25519
key): the registry already knows that certificate (its CA issued it), so it can check a result
against exactly the identity the broker authenticated; one key to provision, protect and revoke
(revoking the certificate stops both the MQTT connection and the acceptance of its results); and
P-256 is what TLS stacks and station secure elements (TPM 2.0, ATECC608) support everywhere.

What is signed: `edge.wire.signing_payload(result)` (canonical JSON without `signature`), so the
registry, which may import only `edge.wire`, rebuilds the same bytes. Signature on the wire:
"ecdsa-p256-sha256:" + base64(DER).

The counter lives in the station's encrypted store, in its own table, and is taken in the same
transaction that inserts the result into the outbox: a result that is not committed does not use
up a counter, a committed one never shares its counter, and the value survives restarts.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fpverify.edge.wire import VerificationResult, signing_payload

SIG_PREFIX = "ecdsa-p256-sha256:"


class SigningError(Exception):
    """The signing key or certificate is unusable; the message says why."""


class CounterStore:
    """The per-device monotonic counter, one row in its own table of the station's store.

    `conn` is a sqlite3/sqlcipher3 connection (edge.cache.Store's, autocommit mode). `next(conn)`
    must be called inside the caller's transaction (the outbox insert), so both commit or neither.
    Restoring the store from an old backup rolls the counter back: the registry then refuses the
    reused counters (counter_reuse); re-provision the station or `advance_to()` past the last value.
    """

    TABLE = "trust_counter"

    def __init__(self, conn) -> None:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
                     "(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL CHECK (value >= 0))")
        conn.execute(f"INSERT OR IGNORE INTO {self.TABLE} (id, value) VALUES (1, 0)")

    def next(self, conn) -> int:
        """The next counter (1, 2, ...). Call inside an open transaction on `conn`."""
        row = conn.execute(f"UPDATE {self.TABLE} SET value = value + 1 WHERE id = 1 RETURNING value").fetchone()
        if row is None:  # the row was deleted behind our back: never restart from 1 silently
            raise SigningError(f"the {self.TABLE} row is missing; the store was tampered with")
        return int(row[0])

    def current(self, conn) -> int:
        row = conn.execute(f"SELECT value FROM {self.TABLE} WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def advance_to(self, conn, value: int) -> int:
        """Move the counter forward (never back), e.g. after restoring a backup."""
        conn.execute(f"UPDATE {self.TABLE} SET value = max(value, ?) WHERE id = 1", (int(value),))
        return self.current(conn)


def load_private_key(path: str | os.PathLike) -> ec.EllipticCurvePrivateKey:
    path = Path(path)
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningError(f"key file {path} is accessible to group/others: chmod 600 it")
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError(f"{path}: the device key must be ECDSA P-256")
    return key


def encode_signature(der: bytes) -> str:
    return SIG_PREFIX + base64.b64encode(der).decode("ascii")


def decode_signature(text: str) -> bytes:
    """DER bytes of a wire signature; ValueError when it is not one."""
    if not text.startswith(SIG_PREFIX):
        raise ValueError("unknown signature scheme")
    try:
        return base64.b64decode(text[len(SIG_PREFIX):], validate=True)
    except ValueError as exc:
        raise ValueError("signature is not valid base64") from exc


def verify_signature(public_key, result: VerificationResult) -> bool:
    """True when `result.signature` is a valid signature by `public_key` over the result."""
    if not result.signature or not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        public_key.verify(decode_signature(result.signature), signing_payload(result), ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


class ResultSigner:
    """Signs a station's results with its device key; counters come from CounterStore."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, device_id: str,
                 certificate: x509.Certificate | None = None) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(private_key.curve,
                                                                                       ec.SECP256R1):
            raise SigningError("the device key must be ECDSA P-256")
        if certificate is not None:
            pub = certificate.public_key()
            if pub.public_numbers() != private_key.public_key().public_numbers():
                raise SigningError("the device key does not belong to the device certificate")
            cns = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
            if not cns or cns[0].value != device_id:
                raise SigningError(f"the certificate is for {cns[0].value if cns else '(no CN)'!r}, "
                                   f"not device {device_id!r}")
        self.key = private_key
        self.device_id = device_id
        self.certificate = certificate
        self._counter: CounterStore | None = None

    @classmethod
    def from_files(cls, key_file: str | os.PathLike, device_id: str,
                   cert_file: str | os.PathLike | None = None) -> ResultSigner:
        """The station's mqtt.key_file / mqtt.cert_file (the same key signs and authenticates TLS)."""
        cert = None
        if cert_file is not None:
            try:
                cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
            except OSError as exc:
                raise SigningError(f"cannot read certificate {cert_file}: {exc.strerror or exc}") from exc
            except ValueError as exc:
                raise SigningError(f"{cert_file} is not a PEM certificate") from exc
        return cls(load_private_key(key_file), device_id, cert)

    def sign_with_counter(self, result: VerificationResult, counter: int) -> VerificationResult:
        """A copy of `result` with `counter` set and signed. Pure (no store)."""
        if result.device_id != self.device_id:
            raise SigningError(f"refusing to sign a result of device {result.device_id!r} "
                               f"with the key of {self.device_id!r}")
        unsigned = result.model_copy(update={"counter": int(counter), "signature": None})
        der = self.key.sign(signing_payload(unsigned), ec.ECDSA(hashes.SHA256()))
        return unsigned.model_copy(update={"signature": encode_signature(der)})

    def sign(self, result: VerificationResult, conn) -> VerificationResult:
        """Take the next counter on `conn` (inside the caller's outbox transaction) and sign."""
        if self._counter is None:
            self._counter = CounterStore(conn)
        return self.sign_with_counter(result, self._counter.next(conn))
