"""ISO/IEC 19794-2:2005 finger minutiae record (FMR), writer and reader.

Record layout (big endian):
    header (24 bytes): 'FMR\\0' | ' 20\\0' | record length u32 | cert flag (4 bits) + capture device
    type (12 bits) | image width u16 | image height u16 | x resolution u16 | y resolution u16
    (pixels per centimetre) | number of finger views u8 | reserved u8
    per finger view: finger position u8 | view number (4 bits) + impression type (4 bits) |
    finger quality u8 (0-100) | number of minutiae u8 |
    per minutia (6 bytes): type (2 bits: 01 ending, 10 bifurcation, 00 other) + x (14 bits) |
    reserved (2 bits) + y (14 bits) | angle u8 (units of 360/256 = 1.40625 degrees,
    counter-clockwise from the x axis) | quality u8 (0-100)
    extended data block length u16 (0: none)
Only the first finger view is read; extended data is skipped. The record carries no segmentation
mask, so cylinders of an imported template look at the minutiae's convex hull instead.
"""

from __future__ import annotations

import struct
from math import pi

import numpy as np

from fpverify.matcher.params import MatchParams
from fpverify.matcher.template import Template

FORMAT_ID = b"FMR\x00"
VERSION = b" 20\x00"
_HEADER = struct.Struct(">4s4sIHHHHHBB")
_VIEW = struct.Struct(">BBBB")
_ANGLE_UNIT = 2 * pi / 256
_TYPE_TO_BITS = {1: 0b01, 2: 0b10, 0: 0b00}
_BITS_TO_TYPE = {0b01: 1, 0b10: 2, 0b00: 0, 0b11: 0}


def write(t: Template, finger_position: int = 0, impression_type: int = 0) -> bytes:
    m = t.minutiae
    if len(m) > 255:  # the count is one byte: keep the best
        m = m[np.sort(np.argsort(-m[:, 3], kind="stable")[:255])]
    ppcm = int(round(500 / 2.54))
    h, w = t.shape
    body = bytearray()
    quality = int(round(float(m[:, 3].mean()) * 100)) if len(m) else 0
    body += _VIEW.pack(finger_position & 0xFF, (0 << 4) | (impression_type & 0x0F), quality, len(m))
    for x, y, a, q, typ in m:
        xi = min(int(round(x)), w - 1, 0x3FFF)
        yi = min(int(round(y)), h - 1, 0x3FFF)
        ai = int(round(a / _ANGLE_UNIT)) % 256
        body += struct.pack(">HHBB", (_TYPE_TO_BITS[int(typ)] << 14) | xi, yi, ai, int(round(q * 100)))
    body += struct.pack(">H", 0)  # no extended data
    length = _HEADER.size + len(body)
    head = _HEADER.pack(FORMAT_ID, VERSION, length, 0, w, h, ppcm, ppcm, 1, 0)
    return head + bytes(body)


def read(data: bytes, params: MatchParams | None = None) -> Template:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("ISO record must be bytes")
    data = bytes(data)
    if len(data) < _HEADER.size + _VIEW.size:
        raise ValueError("ISO 19794-2 record truncated (shorter than header + one view)")
    fmt, ver, length, _dev, w, h, xres, yres, nviews, _ = _HEADER.unpack_from(data)
    if fmt != FORMAT_ID:
        raise ValueError("not an ISO 19794-2 finger minutiae record (format id is not 'FMR')")
    if ver != VERSION:
        raise ValueError(f"unsupported ISO 19794-2 version {ver!r} (reads ' 20')")
    if length != len(data):
        raise ValueError(f"ISO record length field says {length} bytes, got {len(data)}")
    if nviews < 1:
        raise ValueError("ISO record has no finger view")
    if w == 0 or h == 0 or xres == 0 or yres == 0:
        raise ValueError("ISO record has zero image size or resolution")
    _pos, _view, _fq, n = _VIEW.unpack_from(data, _HEADER.size)
    off = _HEADER.size + _VIEW.size
    if len(data) < off + 6 * n + 2:
        raise ValueError("ISO record truncated inside the minutiae")
    m = np.zeros((n, 5), np.float64)
    for i in range(n):
        tx, ry, a, q = struct.unpack_from(">HHBB", data, off + 6 * i)
        m[i] = (tx & 0x3FFF, ry & 0x3FFF, a * _ANGLE_UNIT, min(q, 100) / 100.0, _BITS_TO_TYPE[tx >> 14])
    # Normalise to 500 dpi like the extractor does.
    sx, sy = 500.0 / (xres * 2.54), 500.0 / (yres * 2.54)
    if abs(sx - 1) > 0.01 or abs(sy - 1) > 0.01:
        m[:, 0] *= sx
        m[:, 1] *= sy
        w, h = max(1, int(round(w * sx))), max(1, int(round(h * sy)))
    if n and (m[:, 0].max() >= w or m[:, 1].max() >= h):
        raise ValueError("ISO record has minutiae outside the stated image size")
    dpi = int(round(xres * 2.54))
    return Template(m, (h, w), mask=None, dpi=dpi, params=params)
