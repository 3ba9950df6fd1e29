"""Attacks on the broker with the SHIPPED Mosquitto config (firmware_cfg/mosquitto/): mutual TLS,
identity = certificate CN, pattern ACLs, CRL."""

from __future__ import annotations

import signal
import ssl
import time

import paho.mqtt.client as mqtt

from fpverify.server.trust.pki import write_identity
from tests.server.trust.broker import connect

RESULTS = "fpverify/v1/devices/{}/results"
STATUS = "fpverify/v1/devices/{}/status"
TEMPLATES = "fpverify/v1/devices/{}/templates"


def _as(broker, pki, cn, client_id=None, **kw):
    return connect(broker.host, broker.port, pki.crt(cn), pki.key(cn), pki.ca.cert_path, client_id or cn, **kw)


def _refused(c) -> bool:
    return not any(not rc.is_failure for rc in c.connack if hasattr(rc, "is_failure"))


def test_device_with_its_certificate_connects_and_without_it_is_refused(pki, secure_broker):
    a = _as(secure_broker, pki, "desk-a")
    try:
        assert a.connack and not a.connack[0].is_failure, secure_broker.log()[-1500:]
    finally:
        a.close()
    # no client certificate: the TLS handshake fails (require_certificate)
    anon = connect(secure_broker.host, secure_broker.port, None, None, pki.ca.cert_path, "desk-a")
    assert anon.wait(lambda: anon.disconnects, 20)
    assert _refused(anon)
    anon.close()
    assert "peer did not return a certificate" in secure_broker.log()
    # a certificate from another CA (self-made) is refused too
    from fpverify.server.trust.pki import CertificateAuthority

    rogue = CertificateAuthority.create(pki.dir.parent / "rogue-ca")
    key, cert = rogue.issue_device("desk-a", "hosp-a")
    write_identity(pki.dir.parent / "rogue", "desk-a", key, cert)
    forged = connect(secure_broker.host, secure_broker.port, pki.dir.parent / "rogue" / "desk-a.crt",
                     pki.dir.parent / "rogue" / "desk-a.key", pki.ca.cert_path, "desk-a")
    assert forged.wait(lambda: forged.disconnects, 20)
    assert _refused(forged)
    forged.close()


def test_plain_tcp_and_user_password_are_refused(pki, secure_broker):
    """No TLS at all: the listener speaks only TLS, an MQTT CONNECT in clear gets nowhere."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="desk-a", protocol=mqtt.MQTTv5,
                    reconnect_on_failure=False)
    c.username_pw_set("registry", "guess")
    got = []
    c.on_connect = lambda cl, u, f, rc, p: got.append(rc)
    try:
        c.connect(secure_broker.host, secure_broker.port, keepalive=5)
        c.loop_start()
        time.sleep(2)  # nothing to await: the point is that no CONNACK ever arrives
    except OSError:
        pass
    finally:
        c.loop_stop()
    assert not any(not rc.is_failure for rc in got)


def test_device_cannot_publish_under_another_devices_topics(pki, secure_broker):
    b_sub = _as(secure_broker, pki, "registry")  # the registry reads every device's results
    a = _as(secure_broker, pki, "desk-a")
    try:
        b_sub.subscribe(RESULTS.format("+"))
        b_sub.subscribe(STATUS.format("+"))
        forged = a.publish(RESULTS.format("desk-b"), b'{"forged": true}')
        forged_status = a.publish(STATUS.format("desk-b"), b'{"state": "offline"}', retain=True)
        own = a.publish(RESULTS.format("desk-a"), b'{"own": true}')
        assert a.wait(lambda: {forged, forged_status, own} <= set(a.pubacks))
        # MQTT 5: QoS 1 publish refused by the ACL gets PUBACK 0x87 "Not authorized"
        assert a.pubacks[forged].value == 0x87 and a.pubacks[forged_status].value == 0x87
        assert not a.pubacks[own].is_failure
        assert b_sub.wait(lambda: any(t == RESULTS.format("desk-a") for t, _ in b_sub.messages))
        # the own-topic message arrived after the forged one was refused: the forged one never will
        assert all("desk-b" not in t for t, _ in b_sub.messages), b_sub.messages
    finally:
        a.close()
        b_sub.close()


def test_denied_publish_is_dropped_silently_for_mqtt311(pki, secure_broker):
    reg = _as(secure_broker, pki, "registry")
    a = _as(secure_broker, pki, "desk-a", version=mqtt.MQTTv311)
    try:
        reg.subscribe(RESULTS.format("+"))
        forged = a.publish(RESULTS.format("desk-b"), b"forged")
        own = a.publish(RESULTS.format("desk-a"), b"own")
        assert a.wait(lambda: {forged, own} <= set(a.pubacks))  # 3.1.1 has no negative PUBACK
        assert reg.wait(lambda: reg.messages)
        assert [t for t, _ in reg.messages] == [RESULTS.format("desk-a")]
    finally:
        a.close()
        reg.close()


def test_device_cannot_read_another_devices_notifications(pki, secure_broker):
    reg = _as(secure_broker, pki, "registry")
    a = _as(secure_broker, pki, "desk-a")
    b = _as(secure_broker, pki, "desk-b")
    try:
        a.subscribe(TEMPLATES.format("desk-b"))
        a.subscribe(TEMPLATES.format("+"))
        a.subscribe("fpverify/#")
        a.subscribe(RESULTS.format("+"))  # results of others: not readable either
        b.subscribe(TEMPLATES.format("desk-b"))
        mid = reg.publish(TEMPLATES.format("desk-b"), b'{"kind":"templates_changed","v":1,"version":7}')
        assert reg.wait(lambda: mid in reg.pubacks) and not reg.pubacks[mid].is_failure
        assert b.wait(lambda: b.messages), "desk-b did not get its own notification"
        own = reg.publish(TEMPLATES.format("desk-a"), b'{"kind":"templates_changed","v":1,"version":3}')
        bmid = b.publish(RESULTS.format("desk-b"), b"b's result")
        assert b.wait(lambda: bmid in b.pubacks)
        assert a.wait(lambda: a.messages) and reg.wait(lambda: own in reg.pubacks)
        time.sleep(0.5)  # a's own message came; anything of b's would have been queued before it
        assert {t for t, _ in a.messages} == {TEMPLATES.format("desk-a")}, a.messages
        # a device cannot publish a notification (only the registry may)
        fake = a.publish(TEMPLATES.format("desk-b"), b'{"kind":"templates_changed","v":1,"version":0}')
        assert a.wait(lambda: fake in a.pubacks) and a.pubacks[fake].value == 0x87
    finally:
        for c in (a, b, reg):
            c.close()


def test_client_id_of_another_device_cannot_take_over_its_session(pki, secure_broker):
    b = _as(secure_broker, pki, "desk-b")
    try:
        intruder = _as(secure_broker, pki, "desk-a", client_id="desk-b")  # same client id as b
        assert intruder.connack and not intruder.connack[0].is_failure
        time.sleep(1.0)  # b would be disconnected at once (session takeover) if ids were client-chosen
        assert not b.disconnects, b.disconnects
        assert "as desk-a (" in secure_broker.log()  # use_username_as_clientid: its id is its CN
        intruder.close()
    finally:
        b.close()


def test_device_named_like_the_registry_cannot_be_issued(pki):
    import pytest

    from fpverify.server.trust.pki import PKIError

    for name in ("registry", "Registry", "broker"):
        with pytest.raises(PKIError):
            pki.ca.issue_device(name, "hosp-a")
    with pytest.raises(PKIError):
        pki.ca.issue_device("desk/+", "hosp-a")


def test_revoked_device_is_refused_at_the_handshake(pki, secure_broker):
    r = _as(secure_broker, pki, "desk-r")
    assert r.connack and not r.connack[0].is_failure
    r.close()
    pki.ca.revoke_device("desk-r", "key_compromise")
    assert pki.ca.load_crl().get_revoked_certificate_by_serial_number(
        pki.ca.certificates("desk-r")[0][1].serial_number) is not None
    # the broker re-reads crl.pem on SIGHUP (systemctl reload mosquitto)
    secure_broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    refused = None
    while time.monotonic() < deadline:
        c = _as(secure_broker, pki, "desk-r")
        ok = c.connack and not c.connack[0].is_failure
        c.close()
        if not ok:
            refused = c
            break
        time.sleep(0.5)
    assert refused is not None, "the revoked certificate still connects after SIGHUP"
    assert _refused(refused)
    assert _logged(secure_broker, "certificate verify failed"), secure_broker.log()[-1500:]
    # the others still get in
    a = _as(secure_broker, pki, "desk-a")
    assert a.connack and not a.connack[0].is_failure
    a.close()


def _logged(broker, text: str, timeout: float = 5.0) -> bool:
    """Whether the broker's log shows `text` within `timeout`: it writes the line a moment after the
    client has already seen the refusal."""
    deadline = time.monotonic() + timeout
    while text not in broker.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _handshake(pki, broker, version) -> bool:
    import socket
    import warnings

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca.cert_path))
    ctx.load_cert_chain(str(pki.crt("desk-a")), str(pki.key("desk-a")))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions: the server must refuse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
        except (ssl.SSLError, OSError):
            return False


def test_tls_only_modern_versions(pki, secure_broker):
    """TLS 1.2 works; TLS 1.1 is refused by the broker (tls_version tlsv1.2 is the floor)."""
    assert _handshake(pki, secure_broker, ssl.TLSVersion.TLSv1_2)
    assert not _handshake(pki, secure_broker, ssl.TLSVersion.TLSv1_1)
    assert _logged(secure_broker, "unsupported protocol"), secure_broker.log()[-800:]
