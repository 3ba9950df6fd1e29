"""Fuzzing template files: random and mutated template bytes and ISO records never crash the
matcher with anything but ValueError, and whatever decodes compares to a finite score."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fpverify import matcher
from fpverify.matcher.template import Template

FUZZ = settings(max_examples=300, deadline=None)


def _seed_template() -> Template:
    rng = np.random.default_rng(7)
    n = 40
    minutiae = np.column_stack([
        rng.uniform(40, 260, n), rng.uniform(40, 300, n), rng.uniform(0, 2 * np.pi, n),
        rng.uniform(0.3, 1.0, n), rng.integers(1, 3, n),
    ]).astype(np.float32)
    return Template(minutiae, (340, 300))


SEED = _seed_template()
NATIVE = SEED.to_bytes()
ISO = SEED.to_iso19794_2()


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:cut]) if cut is not None else bytes(b)


def _decode_or_value_error(decode, data: bytes) -> None:
    try:
        t = decode(data)
    except ValueError:
        return
    score = matcher.compare(t, SEED)
    assert math.isfinite(score) and score >= 0


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)
cuts = st.none() | st.integers(0, 400)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_native(data):
    _decode_or_value_error(Template.from_bytes, data)


@FUZZ
@given(edits, cuts)
def test_mutated_native(e, cut):
    _decode_or_value_error(Template.from_bytes, _mutate(NATIVE, e, cut))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_iso(data):
    _decode_or_value_error(Template.from_iso19794_2, data)


@FUZZ
@given(edits, cuts)
def test_mutated_iso(e, cut):
    _decode_or_value_error(Template.from_iso19794_2, _mutate(ISO, e, cut))
