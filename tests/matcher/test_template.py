from __future__ import annotations

import numpy as np
import pytest

from fpverify import matcher
from fpverify.matcher.template import Template
from tests.matcher.synthetic import SHAPE, finger, impression


@pytest.fixture
def tmpl() -> Template:
    rng = np.random.default_rng(7)
    mask = np.zeros((50, 40), bool)
    mask[5:45, 4:36] = True
    return Template(finger(rng), SHAPE, mask=mask, mask_block=8, dpi=569)


def test_round_trip_is_exact(tmpl):
    data = tmpl.to_bytes()
    back = Template.from_bytes(data)
    assert back == tmpl
    assert back.to_bytes() == data
    assert back.dpi == 569 and back.mask_block == 8
    assert matcher.compare(tmpl, back) == pytest.approx(matcher.compare(tmpl, tmpl), abs=1e-6)


def test_round_trip_without_mask_and_empty():
    rng = np.random.default_rng(1)
    t = impression(rng, finger(rng))
    assert Template.from_bytes(t.to_bytes()) == t
    empty = Template(np.zeros((0, 5)), (300, 300))
    back = Template.from_bytes(empty.to_bytes())
    assert len(back) == 0 and back.shape == (300, 300)
    assert matcher.compare(back, t) == 0.0


def test_compact(tmpl):
    # 8 bytes a minutia, header, bit-packed mask, checksum
    assert len(tmpl.to_bytes()) <= 24 + 8 * len(tmpl) + (50 * 40) // 8 + 4


def test_quantisation_is_small():
    rng = np.random.default_rng(3)
    m = finger(rng)
    t = Template(m, SHAPE)
    assert np.abs(t.minutiae[:, :2] - m[:, :2]).max() <= 0.125 + 1e-6
    da = np.abs((t.minutiae[:, 2] - m[:, 2] + np.pi) % (2 * np.pi) - np.pi)
    assert da.max() <= np.pi / 65536 + 1e-6
    assert np.abs(t.minutiae[:, 3] - m[:, 3]).max() <= 0.5 / 255 + 1e-6


def test_truncation_is_detected_at_every_length(tmpl):
    data = tmpl.to_bytes()
    for n in range(len(data)):
        with pytest.raises(ValueError):
            Template.from_bytes(data[:n])
    with pytest.raises(ValueError):
        Template.from_bytes(data + b"\x00")


def test_corruption_is_detected(tmpl):
    data = bytearray(tmpl.to_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data), 60, replace=False):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(ValueError):
            Template.from_bytes(bytes(bad))


def test_header_errors(tmpl):
    data = tmpl.to_bytes()
    with pytest.raises(ValueError, match="magic"):
        Template.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="version"):
        Template.from_bytes(data[:4] + b"\x09" + data[5:])
    with pytest.raises(ValueError):
        Template.from_bytes("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Template.from_bytes(b"")


@pytest.mark.parametrize(
    "minutiae, shape",
    [
        (np.zeros((3, 4)), (100, 100)),  # wrong width
        (np.full((2, 5), np.nan), (100, 100)),
        (np.array([[150.0, 10, 0, 1, 1]]), (100, 100)),  # outside the image
        (np.array([[10.0, 10, 0, 1, 7]]), (100, 100)),  # bad type
        (np.zeros((0, 5)), (0, 100)),
        (np.zeros((0, 5)), (10000, 100)),
    ],
)
def test_bad_templates_rejected(minutiae, shape):
    with pytest.raises(ValueError):
        Template(minutiae, shape)


def test_repr_hides_minutiae(tmpl):
    text = repr(tmpl)
    assert "Template(" in text and str(float(tmpl.minutiae[0, 0])) not in text
