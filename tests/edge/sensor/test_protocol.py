import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpverify.edge.sensor import protocol as p

kinds = st.sampled_from(sorted(p.PACKET_IDS))
payloads = st.binary(min_size=0, max_size=256)
addresses = st.integers(0, 0xFFFFFFFF)


@given(kinds, payloads, addresses)
def test_round_trip(kind, payload, address):
    packet = p.Packet(kind, payload, address)
    data = p.encode(packet)
    assert data[:2] == b"\xef\x01"
    assert len(data) == 11 + len(payload)
    assert p.decode(data) == packet


def test_known_bytes():
    # verifyPassword(0) as pyfingerprint writes it
    data = p.encode(p.Packet(p.COMMAND, bytes((0x13, 0, 0, 0, 0))))
    assert data.hex() == "ef01" "ffffffff" "01" "0007" "13" "00000000" "001b"


@given(kinds, payloads, addresses, st.data())
def test_any_single_byte_corruption_is_rejected(kind, payload, address, data):
    raw = bytearray(p.encode(p.Packet(kind, payload, address)))
    index = data.draw(st.integers(0, len(raw) - 1))
    if 2 <= index < 6:
        return  # the address is not covered by the checksum (as on the real sensor)
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(p.PacketError):
        p.decode(bytes(raw))


def test_specific_errors():
    good = p.encode(p.Packet(p.ACK, b"\x00"))
    with pytest.raises(p.BadHeader):
        p.decode(b"\xee" + good[1:])
    with pytest.raises(p.BadChecksum, match="checksum"):
        p.decode(good[:-1] + bytes(((good[-1] + 1) % 256,)))
    with pytest.raises(p.BadLength, match="truncated"):
        p.decode(good[:-3])
    with pytest.raises(p.BadLength, match="trailing"):
        p.decode(good + b"\x00")
    with pytest.raises(p.BadPacketId):
        p.decode(good[:6] + b"\x05" + good[7:])
    with pytest.raises(p.BadLength, match="outside"):
        p.decode(good[:7] + b"\xff\xff" + good[9:])
    with pytest.raises(p.BadPacketId):
        p.encode(p.Packet(0x33, b""))


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_fuzz_decode_raises_only_packet_errors(blob):
    try:
        packet = p.decode(blob)
    except p.PacketError:
        return
    assert p.encode(packet) == blob


@settings(max_examples=200)
@given(st.lists(st.tuples(kinds, payloads), min_size=1, max_size=5), st.binary(max_size=40), st.integers(1, 64))
def test_stream_decoder_recovers_after_garbage(packets, junk, chunk):
    junk = bytes(b for b in junk if b != 0xEF)  # garbage that cannot fake a header
    wire = junk + b"".join(p.encode(p.Packet(k, pl)) for k, pl in packets)
    decoder = p.StreamDecoder()
    got, errors = [], 0
    for i in range(0, len(wire), chunk):
        piece = wire[i : i + chunk]
        while True:
            try:
                got += decoder.feed(piece)
                break
            except p.PacketError:
                errors += 1
                piece = b""
    got += decoder.feed(b"")
    assert [(q.kind, q.payload) for q in got] == packets
    # one error per chunk that still carried garbage, none without garbage
    assert (errors >= 1) == bool(junk) and errors <= -(-len(junk) // chunk)


def test_image_pack_unpack():
    import numpy as np

    image = np.random.default_rng(0).integers(0, 256, (p.IMAGE_HEIGHT, p.IMAGE_WIDTH), dtype=np.uint8)
    data = p.pack_image(image)
    assert len(data) == p.IMAGE_BYTES
    assert (p.unpack_image(data) == (image >> 4) * 17).all()
    with pytest.raises(p.BadLength):
        p.unpack_image(data[:-1])
