"""Mutual TLS to a real Mosquitto: CA + client certificate from the config; without one, refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fpverify.edge.cache import CardStatus, Store, parse_key
from fpverify.edge.config import load_config
from fpverify.edge.mqtt_link import MqttLink
from fpverify.edge.outbox import Outbox
from fpverify.edge.wire import Outcome, VerificationResult
from fpverify.edge.workflow import Verifier
from tests.edge.helpers import Subscriber, feed, write_config


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder):
    """A CA, a server certificate for 127.0.0.1 and two client certificates, as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("fpverify test CA")).issuer_name(_name("fpverify test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cn, server in (("broker", True), ("desk-01", False), ("test-sub", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (folder / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{cn}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
        os.chmod(folder / f"{cn}.key", 0o600)
    return paths


def test_mutual_tls(tmp_path, mosquitto_factory):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    conf = (f"listener {{port}} 127.0.0.1\ncafile {pki}/ca.pem\ncertfile {pki}/broker.crt\n"
            f"keyfile {pki}/broker.key\nrequire_certificate true\nuse_identity_as_username true\n"
            f"allow_anonymous false\n" + ("user root\n" if os.geteuid() == 0 else ""))
    broker = mosquitto_factory(conf=conf, replace_conf=True)

    sub = Subscriber(broker.host, broker.port, client_id="test-sub", tls={
        "ca_certs": str(pki / "ca.pem"), "certfile": str(pki / "test-sub.crt"), "keyfile": str(pki / "test-sub.key"),
        "tls_version": ssl.PROTOCOL_TLS_CLIENT})
    assert sub.subscribed.wait(15), broker.log()[-2000:]

    # A station with only the CA (no client certificate) is refused; its result stays queued.
    folder = tmp_path / "st"
    write_config(folder, mqtt_port=broker.port, mqtt_extra=f'ca_file = "{pki}/ca.pem"\n')
    cfg = load_config(folder / "edge.toml")
    store = Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes()))
    store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
    outbox = Outbox(store)
    verifier = Verifier(cfg.station, store, outbox, engine=None)
    r1 = verifier.verify("BLOCKED1")
    link = MqttLink(cfg.mqtt, "desk-01", outbox)
    link.start()
    try:
        deadline = time.monotonic() + 20
        while link.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.last_error is not None and not link.connected.is_set()
        assert outbox.count() == 1
    finally:
        link.stop()

    # With the client certificate configured it connects and delivers.
    write_config(folder, mqtt_port=broker.port, mqtt_extra=(
        f'ca_file = "{pki}/ca.pem"\ncert_file = "{pki}/desk-01.crt"\nkey_file = "{pki}/desk-01.key"\n'))
    cfg = load_config(folder / "edge.toml")
    link = MqttLink(cfg.mqtt, "desk-01", outbox)
    verifier.on_recorded = lambda r: link.notify()
    link.start()
    try:
        assert link.connected.wait(15), broker.log()[-2000:]
        r2 = verifier.verify("BLOCKED1")
        assert sub.wait_distinct(2, 30)
        assert sub.distinct() == {str(r1.result_id), str(r2.result_id)}
    finally:
        link.stop()
        sub.close()
        store.close()


def test_signed_results_from_the_station(tmp_path):
    """station.sign_results: each queued result carries a counter and a signature over the wire bytes."""
    from fpverify.edge.signing import verify_signature
    from fpverify.edge.station import Station

    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    folder = tmp_path / "st"
    write_config(folder, extra="sign_results = true", mqtt_port=1, mqtt_extra=(
        f'ca_file = "{pki}/ca.pem"\ncert_file = "{pki}/desk-01.crt"\nkey_file = "{pki}/desk-01.key"\n'))
    cfg = load_config(folder / "edge.toml")
    station = Station(cfg, sensor=None, engine=None, mqtt=False, sync=False)
    try:
        station.store.apply_feed(feed(0, [CardStatus(version=1, card_number="BLOCKED1", status="blocked")]))
        a = station.verifier.verify("BLOCKED1")
        b = station.verifier.verify("BLOCKED1")
        assert (a.counter, b.counter) == (1, 2) and a.signature and b.signature
        queued = [VerificationResult.model_validate_json(p.payload) for p in station.outbox.pending(10)]
        assert queued == [a, b]
        cert = x509.load_pem_x509_certificate((pki / "desk-01.crt").read_bytes())
        assert all(verify_signature(cert.public_key(), r) for r in queued)
        forged = queued[0].model_copy(update={"outcome": Outcome.MATCH})
        assert not verify_signature(cert.public_key(), forged)
    finally:
        station.stop()
