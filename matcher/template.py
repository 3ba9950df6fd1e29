"""Template: the minutiae of one impression plus the finger's footprint, and their binary form.

The descriptors (cylinders) are derived data: they are rebuilt from the minutiae when first
needed and never stored, which keeps stored templates small (8 bytes a minutia plus a bit-packed
mask) and lets the descriptor design change without migrating stored templates.

Binary format (little endian), version 1:
    magic  b"FPVT" | version u8 | flags u8 (bit 0: mask present)
    height u16 | width u16 | dpi u16 | n u16 | mask_block u8 | mask_h u16 | mask_w u16
    n x (x*4 u16, y*4 u16, angle*65536/2pi u16, quality*255 u8, type u8)
    mask bits (numpy packbits, row-major), when present
    crc32 u32 of everything above
Minutiae are quantised to that grid when the Template is built, so a round trip is exact.
"""

from __future__ import annotations

import struct
import zlib
from functools import cached_property
from math import pi

import numpy as np

from fpverify.matcher import descriptors
from fpverify.matcher.params import MatchParams

MAGIC = b"FPVT"
VERSION = 1
_HEAD = struct.Struct("<4sBBHHHHBHH")
_MIN = np.dtype([("x", "<u2"), ("y", "<u2"), ("a", "<u2"), ("q", "u1"), ("t", "u1")])
_XY_SCALE = 4.0
_A_SCALE = 65536.0 / (2.0 * pi)
MAX_SIDE = 16383 // 4  # x*4 must fit 16 bits (and ISO's 14 bits at 1 px)
DEFAULT_PARAMS = MatchParams()


def _quantise(minutiae: np.ndarray) -> np.ndarray:
    m = np.asarray(minutiae, np.float64).reshape(-1, 5)
    q = np.empty(m.shape, np.float32)
    q[:, 0] = np.round(m[:, 0] * _XY_SCALE) / _XY_SCALE
    q[:, 1] = np.round(m[:, 1] * _XY_SCALE) / _XY_SCALE
    q[:, 2] = (np.round(np.mod(m[:, 2], 2 * pi) * _A_SCALE) % 65536) / _A_SCALE
    q[:, 3] = np.round(np.clip(m[:, 3], 0.0, 1.0) * 255.0) / 255.0
    q[:, 4] = m[:, 4]
    return q


class Template:
    """Minutiae (N, 5: x, y, angle, quality, type) in 500-dpi pixels, image shape, optional mask."""

    def __init__(
        self,
        minutiae: np.ndarray,
        shape: tuple[int, int],
        mask: np.ndarray | None = None,
        mask_block: int = 8,
        dpi: int = 500,
        params: MatchParams | None = None,
    ) -> None:
        m = np.asarray(minutiae, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != 5:
            raise ValueError(f"minutiae must be an (N, 5) array, got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("minutiae contain NaN or infinite values")
        h, w = int(shape[0]), int(shape[1])
        if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise ValueError(f"template image shape {shape} out of range 1..{MAX_SIDE}")
        if len(m) > 65535:
            raise ValueError("too many minutiae")
        if np.any(m[:, 0] < 0) or np.any(m[:, 1] < 0) or np.any(m[:, 0] >= w) or np.any(m[:, 1] >= h):
            raise ValueError("minutia coordinates outside the image")
        if not np.all(np.isin(m[:, 4], (0, 1, 2))):
            raise ValueError("minutia type must be 0 (other), 1 (ending) or 2 (bifurcation)")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.ndim != 2 or mask.size == 0 or max(mask.shape) > 65535:
                raise ValueError("mask must be a non-empty 2-D array")
            if not 1 <= mask_block <= 255:
                raise ValueError("mask_block must be 1..255")
        self.minutiae = _quantise(m)
        self.shape = (h, w)
        self.mask = mask
        self.mask_block = int(mask_block)
        self.dpi = int(dpi)
        self.params = params or DEFAULT_PARAMS

    def __repr__(self) -> str:  # never prints minutiae (biometric data)
        return f"Template(minutiae={len(self.minutiae)}, shape={self.shape}, dpi={self.dpi})"

    def __len__(self) -> int:
        return len(self.minutiae)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        masks_equal = (self.mask is None and other.mask is None) or (
            self.mask is not None
            and other.mask is not None
            and self.mask.shape == other.mask.shape
            and bool(np.array_equal(self.mask, other.mask))
            and self.mask_block == other.mask_block
        )
        return (
            self.shape == other.shape
            and self.dpi == other.dpi
            and masks_equal
            and np.array_equal(self.minutiae, other.minutiae)
        )

    __hash__ = None  # type: ignore[assignment]

    # ---- derived data -------------------------------------------------------------------------

    @cached_property
    def valid_grid(self) -> tuple[np.ndarray, int]:
        """Where cylinders may look: the segmentation mask, or the minutiae hull when unknown."""
        if self.mask is not None:
            return self.mask, self.mask_block
        block = 8
        return descriptors.hull_validity(self.minutiae, self.shape, block, self.params.hull_margin), block

    @cached_property
    def local(self) -> descriptors.LocalDescriptors:
        grid, block = self.valid_grid
        return descriptors.build(self.minutiae, grid, block, self.params)

    @cached_property
    def geometry(self) -> np.ndarray:
        return descriptors.pair_geometry(self.local)

    @cached_property
    def desc_t(self) -> np.ndarray:
        """The cylinders as contiguous columns: `compare`'s right operand. OpenBLAS multiplies by a
        contiguous (D, K) matrix about twice as fast as by a transposed view of the (K, D) rows."""
        return np.ascontiguousarray(self.local.desc.T)

    # ---- binary form --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        m = self.minutiae
        rec = np.empty(len(m), _MIN)
        rec["x"] = np.round(m[:, 0] * _XY_SCALE)
        rec["y"] = np.round(m[:, 1] * _XY_SCALE)
        rec["a"] = np.round(m[:, 2] * _A_SCALE) % 65536
        rec["q"] = np.round(m[:, 3] * 255.0)
        rec["t"] = m[:, 4]
        mh, mw = self.mask.shape if self.mask is not None else (0, 0)
        head = _HEAD.pack(
            MAGIC, VERSION, 1 if self.mask is not None else 0,
            self.shape[0], self.shape[1], min(self.dpi, 65535), len(m),
            self.mask_block if self.mask is not None else 0, mh, mw,
        )  # fmt: skip
        body = head + rec.tobytes()
        if self.mask is not None:
            body += np.packbits(self.mask.ravel()).tobytes()
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, params: MatchParams | None = None) -> Template:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError("template data must be bytes")
        data = bytes(data)
        if len(data) < _HEAD.size + 4:
            raise ValueError("template data truncated (shorter than the header)")
        magic, version, flags, h, w, dpi, n, block, mh, mw = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise ValueError("not an fpverify template (bad magic)")
        if version != VERSION:
            raise ValueError(f"unsupported template version {version} (this build reads {VERSION})")
        has_mask = bool(flags & 1)
        mask_bytes = (mh * mw + 7) // 8 if has_mask else 0
        expected = _HEAD.size + n * _MIN.itemsize + mask_bytes + 4
        if len(data) != expected:
            raise ValueError(f"template data has {len(data)} bytes, header says {expected} (truncated or padded)")
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        if zlib.crc32(data[:-4]) != crc:
            raise ValueError("template data corrupted (checksum mismatch)")
        rec = np.frombuffer(data, _MIN, count=n, offset=_HEAD.size)
        m = np.empty((n, 5), np.float64)
        m[:, 0] = rec["x"] / _XY_SCALE
        m[:, 1] = rec["y"] / _XY_SCALE
        m[:, 2] = rec["a"] / _A_SCALE
        m[:, 3] = rec["q"] / 255.0
        m[:, 4] = rec["t"]
        mask = None
        if has_mask:
            if mh == 0 or mw == 0:
                raise ValueError("template mask has zero size")
            off = _HEAD.size + n * _MIN.itemsize
            bits = np.unpackbits(np.frombuffer(data, np.uint8, count=mask_bytes, offset=off))
            mask = bits[: mh * mw].reshape(mh, mw).astype(bool)
        return cls(m, (h, w), mask=mask, mask_block=block or 8, dpi=dpi, params=params)

    # ---- ISO/IEC 19794-2:2005 -----------------------------------------------------------------

    def to_iso19794_2(self, finger_position: int = 0) -> bytes:
        from fpverify.matcher import iso19794

        return iso19794.write(self, finger_position=finger_position)

    @classmethod
    def from_iso19794_2(cls, data: bytes, params: MatchParams | None = None) -> Template:
        from fpverify.matcher import iso19794

        return iso19794.read(data, params=params)
