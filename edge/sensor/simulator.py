"""STATUS: usable. A simulated ZFM fingerprint sensor on a pseudo-terminal.

It speaks the sensor's packet protocol byte for byte, so the unmodified `pyfingerprint` library (or
any ZFM client) drives it through the pty path that `start()` returns. A thread serves the master
side; tests and the demo steer it through the control API (place/lift a finger, go silent, inject
faults).
"""

from __future__ import annotations

import collections
import os
import random
import select
import threading
import time
import tty
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fpverify.edge.sensor import protocol as p

FAULTS = ("bad_checksum", "truncated", "garbage", "wrong_address", "wrong_password", "silence")
STORAGE_CAPACITY = 1000
SYSTEM_ID = 0x0000
SECURITY_LEVEL = 3


def fit_to_sensor(image: np.ndarray) -> np.ndarray:
    """Crop or pad (white) a grey image to the sensor's 288 x 256 window, centred, like a real platen."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"finger image must be a non-empty 2-D uint8 array, got {image.dtype} {image.shape}")
    out = np.full((p.IMAGE_HEIGHT, p.IMAGE_WIDTH), 255, dtype=np.uint8)
    h, w = image.shape
    ch, cw = min(h, p.IMAGE_HEIGHT), min(w, p.IMAGE_WIDTH)
    sy, sx = (h - ch) // 2, (w - cw) // 2
    dy, dx = (p.IMAGE_HEIGHT - ch) // 2, (p.IMAGE_WIDTH - cw) // 2
    out[dy : dy + ch, dx : dx + cw] = image[sy : sy + ch, sx : sx + cw]
    return out


def _load(item) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    import cv2

    image = cv2.imread(str(item), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image {item}")
    return image


class SimulatedSensor:
    def __init__(
        self,
        images: Iterable | None = None,
        password: int = 0,
        address: int = 0xFFFFFFFF,
        baud: int | None = None,
        packet_size: int = 128,
        loop: bool = False,
    ) -> None:
        if packet_size not in p.PACKET_SIZES:
            raise ValueError(f"packet_size must be one of {p.PACKET_SIZES}")
        # images: arrays or file paths, presented one per read-image call while no finger is placed
        self._queue = collections.deque(images or ())
        self._loop = loop
        self.password = password
        self.address = address
        self.baud = baud
        self.packet_size = packet_size
        self._lock = threading.Lock()
        self._finger: np.ndarray | None = None
        self._image_buffer: np.ndarray | None = None
        self._verified = password == 0
        self._silent_until = 0.0
        self._faults: collections.deque[str | None] = collections.deque()
        self._templates: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self.path = ""
        self.commands: list[int] = []  # instruction codes received, for tests and the demo's log
        self._rng = random.Random(0)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass through untouched
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="simulated-sensor", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> SimulatedSensor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- control API -----------------------------------------------------------------------
    def place_finger(self, image: np.ndarray) -> None:
        with self._lock:
            self._finger = fit_to_sensor(image)

    def lift_finger(self) -> None:
        with self._lock:
            self._finger = None

    def go_silent(self, seconds: float) -> None:
        """Unplugged: swallow every command without a reply for `seconds`."""
        with self._lock:
            self._silent_until = time.monotonic() + seconds

    def inject(self, fault: str, count: int = 1, after: int = 0) -> None:
        """Corrupt `count` replies after letting `after` packets through untouched.

        'wrong_password' instead answers the next `count` password checks wrong.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._lock:
            self._faults.extend([None] * after + [fault] * count)

    def add_images(self, images: Iterable) -> None:
        with self._lock:
            self._queue.extend(images)

    # ---- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        decoder = p.StreamDecoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: nobody holds the slave side right now
                time.sleep(0.05)
                continue
            try:
                packets = decoder.feed(data)
            except p.PacketError:
                packets = []
                self._reply_ack(p.ERR_RECEIVE)
            for packet in packets:
                if self._stop.is_set():
                    return
                self._handle(packet)

    def _handle(self, packet: p.Packet) -> None:
        with self._lock:
            silent = time.monotonic() < self._silent_until
        if silent:
            return
        if packet.kind != p.COMMAND or not packet.payload:
            self._reply_ack(p.ERR_RECEIVE)
            return
        code, args = packet.payload[0], packet.payload[1:]
        self.commands.append(code)
        if packet.address != self.address:
            self._reply_ack(p.ERR_ADDRESS)
            return
        if code == p.VERIFY_PASSWORD:
            self._verify_password(args)
        elif not self._verified:
            self._reply_ack(p.ERR_MUST_VERIFY_PASSWORD)
        elif code == p.SET_PASSWORD and len(args) == 4:
            self.password = int.from_bytes(args, "big")
            self._reply_ack(p.OK)
        elif code == p.GET_SYSTEM_PARAMETERS:
            self._reply_ack(p.OK, self._system_parameters())
        elif code == p.SET_SYSTEM_PARAMETER and len(args) == 2:
            self._set_system_parameter(args[0], args[1])
        elif code == p.READ_IMAGE:
            self._read_image()
        elif code == p.DOWNLOAD_IMAGE:
            self._download_image()
        elif code == p.CONVERT_IMAGE and len(args) == 1:
            self._convert_image()
        elif code == p.TEMPLATE_COUNT:
            self._reply_ack(p.OK, len(self._templates).to_bytes(2, "big"))
        elif code == p.TEMPLATE_INDEX and len(args) == 1 and args[0] <= 3:
            self._reply_ack(p.OK, self._template_page(args[0]))
        elif code == p.CLEAR_DATABASE:
            self._templates.clear()
            self._reply_ack(p.OK)
        elif code == p.RANDOM_NUMBER:
            self._reply_ack(p.OK, self._rng.getrandbits(32).to_bytes(4, "big"))
        else:
            self._reply_ack(p.ERR_RECEIVE)  # unknown or malformed instruction

    def _verify_password(self, args: bytes) -> None:
        with self._lock:
            forced_wrong = bool(self._faults) and self._faults[0] == "wrong_password"
            if forced_wrong:
                self._faults.popleft()
        if len(args) == 4 and int.from_bytes(args, "big") == self.password and not forced_wrong:
            self._verified = True
            self._reply_ack(p.OK)
        else:
            self._verified = self.password == 0 and not forced_wrong
            self._reply_ack(p.ERR_WRONG_PASSWORD)

    def _system_parameters(self) -> bytes:
        baud_code = (self.baud or 57600) // 9600
        return b"".join(
            (
                (0).to_bytes(2, "big"),  # status register
                SYSTEM_ID.to_bytes(2, "big"),
                STORAGE_CAPACITY.to_bytes(2, "big"),
                SECURITY_LEVEL.to_bytes(2, "big"),
                self.address.to_bytes(4, "big"),
                p.PACKET_SIZES.index(self.packet_size).to_bytes(2, "big"),
                baud_code.to_bytes(2, "big"),
            )
        )

    def _set_system_parameter(self, number: int, value: int) -> None:
        if number == 6 and value <= 3:
            self.packet_size = p.PACKET_SIZES[value]
        elif number == 4 and 1 <= value <= 12:
            if self.baud is not None:
                self.baud = value * 9600
        elif not (number == 5 and 1 <= value <= 5):
            self._reply_ack(p.ERR_INVALID_REGISTER)
            return
        self._reply_ack(p.OK)

    def _read_image(self) -> None:
        with self._lock:
            image = self._finger
            if image is None and self._queue:
                item = self._queue.popleft()
                if self._loop:
                    self._queue.append(item)
                image = fit_to_sensor(_load(item))
        if image is None:
            self._reply_ack(p.ERR_NO_FINGER)
        else:
            self._image_buffer = image
            self._reply_ack(p.OK)

    def _download_image(self) -> None:
        if self._image_buffer is None:
            self._reply_ack(p.ERR_NO_IMAGE_UPLOAD)
            return
        self._reply_ack(p.OK)
        data = p.pack_image(self._image_buffer)
        size = self.packet_size
        for start in range(0, len(data), size):
            kind = p.END if start + size >= len(data) else p.DATA
            self._send(p.Packet(kind, data[start : start + size], self.address))

    def _convert_image(self) -> None:
        image = self._image_buffer
        if image is None:
            self._reply_ack(p.ERR_INVALID_IMAGE)
        elif float(image.std()) < 8.0:  # blank or washed-out platen
            self._reply_ack(p.ERR_MESSY_IMAGE)
        else:
            self._reply_ack(p.OK)

    def _template_page(self, page: int) -> bytes:
        bits = bytearray(32)
        for position in self._templates:
            if position // 256 == page:
                bits[(position % 256) // 8] |= 1 << (position % 8)
        return bytes(bits)

    # ---- writing, with faults and pacing ---------------------------------------------------
    def _reply_ack(self, code: int, extra: bytes = b"") -> None:
        self._send(p.Packet(p.ACK, bytes((code,)) + extra, self.address))

    def _send(self, packet: p.Packet) -> None:
        with self._lock:
            fault = self._faults.popleft() if self._faults and self._faults[0] != "wrong_password" else None
        data = p.encode(packet)
        if fault == "bad_checksum":
            data = data[:-1] + bytes(((data[-1] + 1) & 0xFF,))
        elif fault == "truncated":
            data = data[: max(len(data) // 2, 9)]
        elif fault == "garbage":
            junk = bytes(self._rng.randrange(0x00, 0xEF) for _ in range(16))
            data = junk + data
        elif fault == "wrong_address":
            other = (packet.address ^ 0x5A5A5A5A) & 0xFFFFFFFF
            data = p.encode(p.Packet(packet.kind, packet.payload, other))
        elif fault == "silence":
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            _, ready, _ = select.select([], [self._master], [], 0.1)
            if not ready:
                continue
            chunk = view[:256] if self.baud else view
            try:
                n = os.write(self._master, chunk)
            except BlockingIOError:
                continue
            if self.baud:  # real-time pacing: 10 bits per byte (8N1)
                time.sleep(n * 10 / self.baud)
            view = view[n:]


def images_in(folder: str | Path) -> list[Path]:
    """Image files of a folder in name order (the order `fpverify sensor-sim` presents them)."""
    suffixes = {".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".pgm"}
    return sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in suffixes)
