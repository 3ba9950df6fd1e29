"""ZhianTec ZFM / R30x / AS608 packet codec.

A packet on the wire: header 0xEF01 (2 bytes), address (4), packet id (1), length (2, payload + 2),
payload (length - 2 bytes), checksum (2: low 16 bits of id + both length bytes + every payload byte).
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = 0xEF01
HEADER_BYTES = bytes((0xEF, 0x01))
DEFAULT_ADDRESS = 0xFFFFFFFF
MIN_PACKET = 11  # header 2 + address 4 + id 1 + length 2 + checksum 2 (empty payload)
MAX_LENGTH = 256 + 2  # largest payload a sensor uses (packet size 256) plus the checksum

# Packet ids
COMMAND = 0x01
DATA = 0x02
ACK = 0x07
END = 0x08
PACKET_IDS = frozenset((COMMAND, DATA, ACK, END))

# Instruction codes (first payload byte of a command packet)
READ_IMAGE = 0x01
CONVERT_IMAGE = 0x02
COMPARE = 0x03
SEARCH = 0x04
CREATE_TEMPLATE = 0x05
STORE_TEMPLATE = 0x06
LOAD_TEMPLATE = 0x07
DOWNLOAD_CHARACTERISTICS = 0x08
UPLOAD_CHARACTERISTICS = 0x09
DOWNLOAD_IMAGE = 0x0A  # "upload image" in the datasheet: sensor -> host
DELETE_TEMPLATE = 0x0C
CLEAR_DATABASE = 0x0D
SET_SYSTEM_PARAMETER = 0x0E
GET_SYSTEM_PARAMETERS = 0x0F
SET_PASSWORD = 0x12
VERIFY_PASSWORD = 0x13
RANDOM_NUMBER = 0x14
SET_ADDRESS = 0x15
TEMPLATE_COUNT = 0x1D
TEMPLATE_INDEX = 0x1F

# Confirmation codes (first payload byte of an ack packet)
OK = 0x00
ERR_RECEIVE = 0x01  # error receiving the packet (bad checksum, unknown instruction)
ERR_NO_FINGER = 0x02
ERR_READ_IMAGE = 0x03
ERR_MESSY_IMAGE = 0x06
ERR_FEW_FEATURES = 0x07
ERR_NO_IMAGE_UPLOAD = 0x0F
ERR_WRONG_PASSWORD = 0x13
ERR_INVALID_IMAGE = 0x15
ERR_INVALID_REGISTER = 0x1A
ERR_ADDRESS = 0x20
ERR_MUST_VERIFY_PASSWORD = 0x21

# Image geometry of the ZFM family: 256 x 288 pixels, 4 bits per pixel, two pixels per byte.
IMAGE_WIDTH = 256
IMAGE_HEIGHT = 288
IMAGE_BYTES = IMAGE_WIDTH * IMAGE_HEIGHT // 2
PACKET_SIZES = (32, 64, 128, 256)  # system-parameter code 0..3


class PacketError(ValueError):
    """A malformed packet. Subclasses say which part is wrong."""


class BadHeader(PacketError):
    pass


class BadLength(PacketError):
    pass


class BadChecksum(PacketError):
    pass


class BadPacketId(PacketError):
    pass


@dataclass(frozen=True)
class Packet:
    kind: int  # packet id: COMMAND, DATA, ACK or END
    payload: bytes
    address: int = DEFAULT_ADDRESS


def checksum(kind: int, payload: bytes) -> int:
    length = len(payload) + 2
    return (kind + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode(packet: Packet) -> bytes:
    if packet.kind not in PACKET_IDS:
        raise BadPacketId(f"unknown packet id 0x{packet.kind:02x}")
    if not 0 <= packet.address <= 0xFFFFFFFF:
        raise ValueError(f"address out of range: {packet.address}")
    length = len(packet.payload) + 2
    if length > 0xFFFF:
        raise BadLength(f"payload too long: {len(packet.payload)} bytes")
    return (
        HEADER_BYTES
        + packet.address.to_bytes(4, "big")
        + bytes((packet.kind,))
        + length.to_bytes(2, "big")
        + bytes(packet.payload)
        + checksum(packet.kind, packet.payload).to_bytes(2, "big")
    )


def packet_size(buffer: bytes) -> int | None:
    """Total size of the packet at the start of buffer, or None while the header is incomplete.

    Raises BadHeader / BadLength / BadPacketId as soon as the bytes seen prove the packet malformed.
    """
    if len(buffer) >= 1 and buffer[0] != HEADER_BYTES[0] or len(buffer) >= 2 and buffer[1] != HEADER_BYTES[1]:
        raise BadHeader(f"packet does not start with 0xEF01: {bytes(buffer[:2]).hex()}")
    if len(buffer) >= 7 and buffer[6] not in PACKET_IDS:
        raise BadPacketId(f"unknown packet id 0x{buffer[6]:02x}")
    if len(buffer) < 9:
        return None
    length = int.from_bytes(buffer[7:9], "big")
    if length < 2 or length > MAX_LENGTH:
        raise BadLength(f"packet length {length} outside 2..{MAX_LENGTH}")
    return 9 + length


def decode(data: bytes) -> Packet:
    """Decode exactly one packet; any missing, extra or wrong byte raises a PacketError."""
    size = packet_size(data)
    if size is None or len(data) < size:
        raise BadLength(f"truncated packet: {len(data)} bytes, need {size or MIN_PACKET}")
    if len(data) > size:
        raise BadLength(f"{len(data) - size} trailing bytes after a {size}-byte packet")
    kind = data[6]
    payload = bytes(data[9 : size - 2])
    got = int.from_bytes(data[size - 2 : size], "big")
    want = checksum(kind, payload)
    if got != want:
        raise BadChecksum(f"checksum 0x{got:04x}, expected 0x{want:04x}")
    return Packet(kind, payload, int.from_bytes(data[2:6], "big"))


class StreamDecoder:
    """Incremental decoder for a byte stream: feed() bytes, get complete packets back.

    A malformed packet raises PacketError once; the decoder then skips to the next 0xEF01 so the
    stream recovers like a real sensor's UART parser does.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self.buffer += data
        packets: list[Packet] = []
        while self.buffer:
            try:
                size = packet_size(self.buffer)
                if size is None or len(self.buffer) < size:
                    break
                chunk = bytes(self.buffer[:size])
                del self.buffer[:size]
                packets.append(decode(chunk))
            except PacketError:
                self.resync()
                raise
        return packets

    def resync(self) -> None:
        """Drop bytes up to the next possible header (keeping a trailing 0xEF that may start one)."""
        at = self.buffer.find(HEADER_BYTES, 1)
        if at < 0:
            keep = 1 if self.buffer[-1:] == HEADER_BYTES[:1] else 0
            del self.buffer[: len(self.buffer) - keep]
        else:
            del self.buffer[:at]


def pack_image(image) -> bytes:
    """uint8 array (288, 256) -> 18432 bytes: the high nibble of each pixel, even x in the high half."""
    import numpy as np

    nibbles = (np.asarray(image, dtype=np.uint8) >> 4).reshape(-1)
    return ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8).tobytes()


def unpack_image(data: bytes):
    """18432 bytes -> uint8 array (288, 256), 4-bit values scaled by 17 to 0..255 (as pyfingerprint)."""
    import numpy as np

    if len(data) != IMAGE_BYTES:
        raise BadLength(f"image data is {len(data)} bytes, expected {IMAGE_BYTES}")
    raw = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(raw.size * 2, dtype=np.uint8)
    out[0::2] = raw >> 4
    out[1::2] = raw & 0x0F
    return (out * 17).reshape(IMAGE_HEIGHT, IMAGE_WIDTH)
