"""STATUS: usable. The station's sensor driver: pyfingerprint (unmodified) with a watchdog and in-memory images.

pyfingerprint reads the serial line one byte at a time and keeps going on empty reads (an empty read
is stored as a "byte" and the packet only fails, with a confusing error, after many port timeouts),
so a silent or unplugged sensor stalls its caller for a long time. The driver wraps the library's
serial port in `_WatchdogPort`: every packet read gets a deadline of `timeout_s`, and an empty read
past it raises SensorError at once. Library exceptions (bad header, bad checksum, ...) become
SensorError with a clear message, and the input buffer is flushed before the next command so a
late or corrupt reply cannot poison it.

Images: `PyFingerprint.downloadImage(path)` decodes pixel by pixel into a PIL image and writes a PNG.
`_Fingerprint.download_image_array()` sends the same command through the library's own packet
functions and decodes the packets with numpy, in memory (no file with biometric data on disk).
`capture(..., in_memory=False)` keeps the library's path as a fallback.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

import numpy as np
import serial
from pyfingerprint.pyfingerprint import PyFingerprint

from fpverify.edge.sensor import protocol as p


class SensorError(Exception):
    """The sensor failed: silent (timeout), corrupt packet, wrong password, port missing, ..."""


class SensorTimeout(SensorError):
    """No (complete) reply within the watchdog's deadline."""


class NoFinger(SensorTimeout, TimeoutError):
    """No finger was placed within the capture's wait."""


class _WatchdogPort:
    """Wraps a pyserial port: reads fail with SensorTimeout past a per-packet deadline.

    Also keeps the raw bytes of the packet being read, so the driver can check the reply's address
    (pyfingerprint ignores it) and say how much of a truncated packet arrived.
    """

    POLL_S = 0.05

    def __init__(self, port: serial.Serial, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.port.timeout = min(self.POLL_S, timeout_s)
        self.deadline = time.monotonic() + timeout_s
        self.packet = bytearray()
        self.pending = bytearray()

    def begin_packet(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s
        self.packet.clear()

    def read(self, size: int = 1) -> bytes:
        while not self.pending:
            chunk = self.port.read(max(1, self.port.in_waiting))
            if chunk:
                self.pending += chunk
            elif time.monotonic() > self.deadline:
                if self.packet:
                    raise SensorTimeout(
                        f"truncated packet: {len(self.packet)} bytes, then silence for {self.timeout_s:g} s"
                    )
                raise SensorTimeout(f"sensor silent: no reply within {self.timeout_s:g} s")
        out = bytes(self.pending[:size])
        del self.pending[:size]
        self.packet += out
        return out

    def flush_input(self) -> None:
        self.pending.clear()
        self.port.reset_input_buffer()

    def drain(self, quiet_s: float = 0.15) -> None:
        """After a failed exchange: discard input until the line stays quiet (bounded by timeout_s)."""
        self.pending.clear()
        end = time.monotonic() + self.timeout_s
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet_s:
            if self.port.read(max(1, self.port.in_waiting)):
                last = time.monotonic()

    # everything else pyfingerprint uses (write, isOpen, close, ...) goes to the real port
    def __getattr__(self, name):
        return getattr(self.port, name)


class _Fingerprint(PyFingerprint):
    """PyFingerprint with the watchdog port, reply address checks and an in-memory image download."""

    def __init__(self, port: str, baud: int, address: int, password: int, timeout_s: float) -> None:
        super().__init__(port, baud, address, password)
        self.expected_address = address
        self.watchdog = _WatchdogPort(self._PyFingerprint__serial, timeout_s)
        self._PyFingerprint__serial = self.watchdog

    # Overrides the library's private packet reader (name-mangled), the single place it reads.
    def _PyFingerprint__readPacket(self):
        self.watchdog.begin_packet()
        packet = PyFingerprint._PyFingerprint__readPacket(self)
        raw = self.watchdog.packet
        address = int.from_bytes(raw[2:6], "big") if len(raw) >= 6 else None
        if address != self.expected_address:
            raise SensorError(f"reply from address 0x{address:08x}, expected 0x{self.expected_address:08x}")
        return packet

    def download_image_array(self) -> np.ndarray:
        """downloadImage without the PNG file: the same packets, decoded with numpy."""
        self._PyFingerprint__writePacket(p.COMMAND, (p.DOWNLOAD_IMAGE,))
        kind, payload = self._PyFingerprint__readPacket()
        if kind != p.ACK:
            raise SensorError(f"expected an ack packet, got packet id 0x{kind:02x}")
        if payload[0] != p.OK:
            raise SensorError(f"sensor refused the image download (code 0x{payload[0]:02x})")
        data = bytearray()
        while kind != p.END:
            kind, payload = self._PyFingerprint__readPacket()
            if kind not in (p.DATA, p.END):
                raise SensorError(f"expected a data packet, got packet id 0x{kind:02x}")
            data += bytes(payload)
            if len(data) > p.IMAGE_BYTES:
                raise SensorError(f"image data longer than {p.IMAGE_BYTES} bytes")
        if len(data) != p.IMAGE_BYTES:
            raise SensorError(f"image data is {len(data)} bytes, expected {p.IMAGE_BYTES}")
        return p.unpack_image(bytes(data))


class SensorDriver:
    def __init__(
        self,
        port: str,
        baud: int = 57600,
        address: int = 0xFFFFFFFF,
        password: int = 0,
        timeout_s: float = 3.0,
        in_memory: bool = True,
    ) -> None:
        self.port = port
        self.baud = baud
        self.address = address
        self.password = password
        self.timeout_s = timeout_s
        self.in_memory = in_memory
        self._dev: _Fingerprint | None = None
        self._lock = threading.RLock()

    # ---- connection ------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            self.close()
            try:
                self._dev = _Fingerprint(self.port, self.baud, self.address, self.password, self.timeout_s)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise SensorError(f"cannot open sensor port {self.port}: {exc}") from exc
            try:
                ok = self._call(self._dev.verifyPassword)
            except SensorError:
                self.close()
                raise
            if not ok:
                self.close()
                raise SensorError("sensor rejected the password (wrong sensor password)")

    def close(self) -> None:
        with self._lock:
            dev, self._dev = self._dev, None
            if dev is not None:
                try:
                    dev.watchdog.port.close()
                except (serial.SerialException, OSError):
                    pass

    def reconnect(self) -> None:
        self.open()

    @property
    def is_open(self) -> bool:
        return self._dev is not None

    def __enter__(self) -> SensorDriver:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- commands --------------------------------------------------------------------------
    def finger_present(self) -> bool:
        """One read-image poll: True when a finger is on the sensor (its image is now in the buffer)."""
        with self._lock:
            return bool(self._call(self._device().readImage))

    def capture(self, wait_s: float = 10.0, poll_s: float = 0.05) -> np.ndarray:
        """Wait up to wait_s for a finger, then download its image: uint8 (288, 256), values 0..255."""
        deadline = time.monotonic() + wait_s
        while not self.finger_present():
            if time.monotonic() >= deadline:
                raise NoFinger(f"no finger on the sensor within {wait_s:g} s")
            time.sleep(poll_s)
        return self.download_image()

    def download_image(self) -> np.ndarray:
        """Download the image last read by finger_present()/capture()."""
        with self._lock:
            dev = self._device()
            if self.in_memory:
                return self._call(dev.download_image_array)
            return self._call(self._download_via_png, dev)

    def convert_image(self, buffer: int = 1) -> bool:
        with self._lock:
            return bool(self._call(self._device().convertImage, buffer))

    def template_count(self) -> int:
        with self._lock:
            return int(self._call(self._device().getTemplateCount))

    def system_parameters(self) -> tuple:
        with self._lock:
            return tuple(self._call(self._device().getSystemParameters))

    # ---- helpers ---------------------------------------------------------------------------
    def _device(self) -> _Fingerprint:
        if self._dev is None:
            raise SensorError("sensor not open")
        return self._dev

    def _call(self, fn, *args):
        """Run one exchange: clear stale input, translate every library failure into SensorError."""
        dev = self._device()
        try:
            dev.watchdog.flush_input()
            return fn(*args)
        except SensorError:
            self._drain(dev)
            raise
        except (serial.SerialException, OSError) as exc:
            raise SensorError(f"serial port failed: {exc}") from exc
        except Exception as exc:  # pyfingerprint raises bare Exception (and TypeError on empty reads)
            self._drain(dev)
            raise SensorError(f"sensor protocol error: {exc}") from exc

    @staticmethod
    def _drain(dev: _Fingerprint) -> None:
        # the rest of a corrupt reply may still be on its way: let it pass so the next exchange is clean
        try:
            dev.watchdog.drain()
        except (serial.SerialException, OSError):
            pass

    @staticmethod
    def _download_via_png(dev: _Fingerprint) -> np.ndarray:
        """Fallback: the library's own downloadImage, through a private temporary PNG that is deleted."""
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="fpv-sensor-") as folder:
            os.chmod(folder, 0o700)
            path = os.path.join(folder, "image.png")
            dev.downloadImage(path)
            with Image.open(path) as image:
                return np.array(image.convert("L"), dtype=np.uint8)
