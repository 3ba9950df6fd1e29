"""The registry's certificate authority: device identities for MQTT mutual TLS and signed results.

One folder (`ca_dir`, mode 700) holds everything; every file in it is written 0600, atomically
(temporary file + rename), under an exclusive lock, so the CLI can issue or revoke while the
registry reads:

    ca.key          the CA's private key (ECDSA P-256). Keep this folder off the broker host.
    ca.crt          the CA certificate: trust anchor of the broker, the registry and every station
    index.json      every certificate issued: serial, common name, site, kind, expiry, revocation
    issued/<serial>.crt
    crl.pem         the revocation list the broker loads (`crlfile`); regenerate before `next_update`

Device certificates: CN = device id (Mosquitto's `use_identity_as_username` makes it the MQTT user
name the ACL patterns match), OU = site, plus a SAN URI `urn:fpverify:site:<site>:device:<id>`.
Keys are ECDSA P-256: supported by OpenSSL/Mosquitto TLS and by the secure elements a station can
use later, and the same key signs the station's results (edge/signing.py), so revoking the
certificate cuts both the MQTT access and the acceptance of its results.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Same alphabet as edge.wire.DeviceId: nothing an MQTT topic or an ACL pattern would interpret.
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Identities that are not stations: a station may never be issued one of these names, or the
# broker's ACL would give it the registry's rights.
RESERVED_NAMES = frozenset({"registry", "broker", "admin", "root", "mosquitto", "fpverify-registry"})
DEVICE_DAYS = 825
SERVER_DAYS = 825
CA_DAYS = 3650
CRL_DAYS = 30
REVOCATION_REASONS = {r.name: r for r in x509.ReasonFlags}


class PKIError(Exception):
    """The CA folder or a request is unusable; the message says why."""


@dataclass
class IssuedCert:
    serial: int
    common_name: str
    kind: str  # "device" | "server" | "client"
    site: str | None
    not_before: str
    not_after: str
    revoked_at: str | None = None
    reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expires(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.not_after)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private(path: Path, data: bytes) -> None:
    """Atomic write with mode 0600 from the start (never briefly world-readable)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def check_device_id(device_id: str) -> None:
    if not ID_RE.match(device_id or ""):
        raise PKIError(f"device id {device_id!r}: 1-64 letters, digits, _ . - (starting with a letter or digit)")
    if device_id.lower() in RESERVED_NAMES:
        raise PKIError(f"{device_id!r} is reserved for a service identity, not a station")


def cert_site(cert: x509.Certificate) -> str | None:
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(ous[0].value) if ous else None


def cert_common_name(cert: x509.Certificate) -> str | None:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


class CertificateAuthority:
    def __init__(self, ca_dir: str | os.PathLike) -> None:
        self.dir = Path(ca_dir)
        if not (self.dir / "ca.crt").is_file():
            raise PKIError(f"no CA in {self.dir}: create one with `fpverify server pki init --ca-dir {self.dir}`")
        self.cert = x509.load_pem_x509_certificate((self.dir / "ca.crt").read_bytes())

    # -- paths -----------------------------------------------------------------------------------
    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def index_path(self) -> Path:
        return self.dir / "index.json"

    def issued_path(self, serial: int) -> Path:
        return self.dir / "issued" / f"{serial:x}.crt"

    # -- creation --------------------------------------------------------------------------------
    @classmethod
    def create(cls, ca_dir: str | os.PathLike, common_name: str = "fpverify registry CA",
               days: int = CA_DAYS) -> CertificateAuthority:
        d = Path(ca_dir)
        if (d / "ca.crt").exists() or (d / "ca.key").exists():
            raise PKIError(f"{d} already holds a CA; refusing to overwrite it")
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        (d / "issued").mkdir(exist_ok=True)
        os.chmod(d / "issued", 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fpverify"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write_private(d / "ca.key", key_pem(key))
        write_private(d / "ca.crt", cert_pem(cert))
        write_private(d / "index.json", b"[]\n")
        ca = cls(d)
        with ca._locked():
            ca._write_crl(key, [])
        return ca

    @classmethod
    def open_or_create(cls, ca_dir: str | os.PathLike) -> CertificateAuthority:
        return cls(ca_dir) if (Path(ca_dir) / "ca.crt").is_file() else cls.create(ca_dir)

    # -- internals -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _key(self) -> ec.EllipticCurvePrivateKey:
        path = self.dir / "ca.key"
        if not path.is_file():
            raise PKIError(f"the CA key {path} is not here: issue and revoke on the CA host")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PKIError("the CA key is not an EC key")
        return key

    def _load_index(self) -> list[IssuedCert]:
        try:
            rows = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise PKIError(f"cannot read {self.index_path}: {exc}") from exc
        return [IssuedCert(**r) for r in rows]

    def _save_index(self, rows: list[IssuedCert]) -> None:
        data = json.dumps([asdict(r) for r in rows], indent=1).encode() + b"\n"
        write_private(self.index_path, data)

    def _write_crl(self, key: ec.EllipticCurvePrivateKey, rows: list[IssuedCert], days: int = CRL_DAYS) -> None:
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days)))
        for r in rows:
            if not r.revoked:
                continue
            rc = (x509.RevokedCertificateBuilder().serial_number(r.serial)
                  .revocation_date(dt.datetime.fromisoformat(r.revoked_at)))
            reason = REVOCATION_REASONS.get(r.reason or "")
            if reason is not None and reason not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl):
                rc = rc.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(rc.build())
        crl = builder.sign(key, hashes.SHA256())
        write_private(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))

    def _issue(self, common_name: str, kind: str, site: str | None, public_key, days: int,
               hosts: list[str] = ()) -> x509.Certificate:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fpverify")]
        if site:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = _now()
        usages = {"device": [ExtendedKeyUsageOID.CLIENT_AUTH],
                  "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
                  "server": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}[kind]
        builder = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=kind == "server", key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),
                                  critical=False))
        sans: list[x509.GeneralName] = []
        if kind == "device":
            sans.append(x509.UniformResourceIdentifier(f"urn:fpverify:site:{site}:device:{common_name}"))
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        with self._locked():
            cert = builder.sign(self._key(), hashes.SHA256())
            rows = self._load_index()
            write_private(self.issued_path(cert.serial_number), cert_pem(cert))
            rows.append(IssuedCert(serial=cert.serial_number, common_name=common_name, kind=kind, site=site,
                                   not_before=cert.not_valid_before_utc.isoformat(),
                                   not_after=cert.not_valid_after_utc.isoformat()))
            self._save_index(rows)
        return cert

    # -- issuing ---------------------------------------------------------------------------------
    def issue_device(self, device_id: str, site: str, days: int = DEVICE_DAYS,
                     replace: bool = False) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key pair and client certificate for a station. An existing valid certificate for
        the same device is an error unless `replace`, which revokes it (superseded)."""
        check_device_id(device_id)
        if not ID_RE.match(site or ""):
            raise PKIError(f"site {site!r}: 1-64 letters, digits, _ . -")
        clash = [r for r in self._load_index() if r.common_name == device_id and r.kind != "device"]
        if clash:
            raise PKIError(f"{device_id!r} is already the name of a {clash[0].kind} identity")
        active = self.active(device_id)
        if active and not replace:
            raise PKIError(f"device {device_id!r} already has a valid certificate (serial {active[0].serial:x}); "
                           "use --replace to issue a new one and revoke the old")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(device_id, "device", site, key.public_key(), days)
        for r in active:
            self.revoke(r.serial, reason="superseded")
        return key, cert

    def issue_server(self, common_name: str, hosts: list[str] | tuple[str, ...] = ("127.0.0.1", "localhost"),
                     days: int = SERVER_DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """Broker or registry HTTPS certificate (serverAuth, also clientAuth so the registry can use it)."""
        if not ID_RE.match(common_name or ""):
            raise PKIError(f"name {common_name!r}: letters, digits, _ . -")
        self._no_device_named(common_name)
        key = ec.generate_private_key(ec.SECP256R1())
        return key, self._issue(common_name, "server", None, key.public_key(), days, list(hosts))

    def issue_client(self, common_name: str = "registry",
                     days: int = SERVER_DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A service identity for MQTT (e.g. the registry's ingest worker, CN 'registry')."""
        if not ID_RE.match(common_name or ""):
            raise PKIError(f"name {common_name!r}: letters, digits, _ . -")
        self._no_device_named(common_name)
        key = ec.generate_private_key(ec.SECP256R1())
        return key, self._issue(common_name, "client", None, key.public_key(), days)

    def _no_device_named(self, name: str) -> None:
        if any(r.common_name == name and r.kind == "device" for r in self._load_index()):
            raise PKIError(f"{name!r} is already a device's name")

    # -- revocation ------------------------------------------------------------------------------
    def revoke(self, serial: int, reason: str = "unspecified") -> IssuedCert:
        if reason not in REVOCATION_REASONS:
            raise PKIError(f"unknown revocation reason {reason!r}; one of {sorted(REVOCATION_REASONS)}")
        with self._locked():
            rows = self._load_index()
            hit = next((r for r in rows if r.serial == serial), None)
            if hit is None:
                raise PKIError(f"no certificate with serial {serial:x}")
            if not hit.revoked:
                hit.revoked_at = _now().isoformat()
                hit.reason = reason
                self._save_index(rows)
            self._write_crl(self._key(), rows)
        return hit

    def revoke_device(self, device_id: str, reason: str = "unspecified") -> list[IssuedCert]:
        """Revoke every certificate of a station (lost, stolen, decommissioned)."""
        targets = [r for r in self._load_index() if r.common_name == device_id and not r.revoked]
        if not targets:
            raise PKIError(f"no valid certificate for {device_id!r}")
        return [self.revoke(r.serial, reason) for r in targets]

    def write_crl(self, days: int = CRL_DAYS) -> Path:
        """Re-sign the CRL (run from cron well before next_update: an expired CRL locks everyone out)."""
        with self._locked():
            self._write_crl(self._key(), self._load_index(), days)
        return self.crl_path

    # -- queries ---------------------------------------------------------------------------------
    def index(self) -> list[IssuedCert]:
        return self._load_index()

    def certificates(self, common_name: str) -> list[tuple[IssuedCert, x509.Certificate]]:
        out = []
        for r in self._load_index():
            if r.common_name == common_name:
                path = self.issued_path(r.serial)
                if path.is_file():
                    out.append((r, x509.load_pem_x509_certificate(path.read_bytes())))
        return out

    def active(self, common_name: str, at: dt.datetime | None = None) -> list[IssuedCert]:
        at = at or _now()
        return [r for r in self._load_index()
                if r.common_name == common_name and not r.revoked and r.expires() > at]

    def is_revoked(self, serial: int) -> bool:
        return any(r.serial == serial and r.revoked for r in self._load_index())

    def issued_by_me(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def load_crl(self) -> x509.CertificateRevocationList:
        return x509.load_pem_x509_crl(self.crl_path.read_bytes())


def write_identity(out_dir: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    """<name>.crt and <name>.key (both 0600) into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crt, k = out_dir / f"{name}.crt", out_dir / f"{name}.key"
    write_private(crt, cert_pem(cert))
    write_private(k, key_pem(key))
    return crt, k
