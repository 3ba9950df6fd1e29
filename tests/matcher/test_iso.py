from __future__ import annotations

import struct

import numpy as np
import pytest

from fpverify import matcher
from fpverify.matcher.template import Template
from tests.matcher.synthetic import SHAPE, finger


@pytest.fixture
def tmpl() -> Template:
    return Template(finger(np.random.default_rng(11)), SHAPE)


def test_header_layout(tmpl):
    rec = tmpl.to_iso19794_2(finger_position=2)
    assert rec[:4] == b"FMR\x00" and rec[4:8] == b" 20\x00"
    (length,) = struct.unpack(">I", rec[8:12])
    assert length == len(rec) == 24 + 4 + 6 * len(tmpl) + 2
    w, h, xres, yres, views = struct.unpack(">HHHHB", rec[14:23])
    assert (h, w) == SHAPE and xres == yres == 197 and views == 1
    pos, _view, _q, n = rec[24:28]
    assert pos == 2 and n == len(tmpl)


def test_round_trip_within_quantisation(tmpl):
    back = Template.from_iso19794_2(tmpl.to_iso19794_2())
    a, b = tmpl.minutiae, back.minutiae
    assert back.shape == tmpl.shape and len(back) == len(tmpl)
    assert np.abs(a[:, :2] - b[:, :2]).max() <= 0.5 + 1e-6
    da = np.abs((a[:, 2] - b[:, 2] + np.pi) % (2 * np.pi) - np.pi)
    assert da.max() <= np.deg2rad(1.40625) / 2 + 1e-5
    assert np.abs(a[:, 3] - b[:, 3]).max() <= 0.005 + 1e-6
    assert np.array_equal(a[:, 4], b[:, 4])
    # A second trip changes nothing.
    assert Template.from_iso19794_2(back.to_iso19794_2()) == back


def test_round_trip_still_matches(tmpl):
    back = Template.from_iso19794_2(tmpl.to_iso19794_2())
    self_score = matcher.compare(tmpl, tmpl)
    assert matcher.compare(tmpl, back) > 0.7 * self_score


def test_type_bits(tmpl):
    rec = tmpl.to_iso19794_2()
    first = struct.unpack(">H", rec[28:30])[0]
    assert first >> 14 == {1: 0b01, 2: 0b10}[int(tmpl.minutiae[0, 4])]


def test_other_resolution_is_normalised(tmpl):
    rec = bytearray(tmpl.to_iso19794_2())
    rec[18:22] = struct.pack(">HH", 394, 394)  # 1000 dpi: coordinates halve at 500 dpi
    back = Template.from_iso19794_2(bytes(rec))
    assert back.shape == (SHAPE[0] // 2, SHAPE[1] // 2)
    assert np.abs(back.minutiae[:, 0] - np.round(tmpl.minutiae[:, 0]) / 2).max() < 0.2


def test_bad_records(tmpl):
    rec = tmpl.to_iso19794_2()
    for n in (0, 10, 27, len(rec) - 1):
        with pytest.raises(ValueError):
            Template.from_iso19794_2(rec[:n])
    with pytest.raises(ValueError, match="FMR"):
        Template.from_iso19794_2(b"ABC\x00" + rec[4:])
    with pytest.raises(ValueError, match="version"):
        Template.from_iso19794_2(rec[:4] + b" 30\x00" + rec[8:])
    bad = bytearray(rec)
    bad[23 - 1] = 0  # no finger views
    with pytest.raises(ValueError):
        Template.from_iso19794_2(bytes(bad))
    bad = bytearray(rec)
    bad[27] = 255  # more minutiae than the record holds
    with pytest.raises(ValueError):
        Template.from_iso19794_2(bytes(bad))
