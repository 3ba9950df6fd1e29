"""The station's decision rule: best score over every template the card allows, at a threshold for
that many templates, so that a card with more templates (delegates, more fingers) never loosens the
false-match promise. Real matcher, real cache and outbox; no sensor (verify_image)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fpverify import matcher
from fpverify.edge.config import load_config
from fpverify.edge.station import Station
from fpverify.edge.wire import Outcome
from tests.edge.helpers import DELEGATE, HOLDER, STRANGER, feed, now, template_add, write_config


@pytest.fixture
def station(tmp_path, fingers):
    """CARD0001: one holder press; CARD0003: three; CARD0006: three and a delegate's three;
    CARD0009: two good presses and one the cache cannot parse."""
    cfg = load_config(write_config(tmp_path / "st"))
    st = Station(cfg, sensor=None, sync=False, mqtt=False)
    t = {seed: [matcher.extract(img).to_bytes() for img in fingers[seed][:3]] for seed in (HOLDER, DELEGATE)}
    changes: list = []

    def add(card, blob, **kw):
        changes.append(template_add(len(changes) + 1, f"t{len(changes)}", card, blob, **kw))

    add("CARD0001", t[HOLDER][0])
    for k in range(3):
        add("CARD0003", t[HOLDER][k])
        add("CARD0006", t[HOLDER][k])
        add(
            "CARD0006",
            t[DELEGATE][k],
            role="delegate",
            delegate_id="wife-01",
            valid_until=now() + timedelta(days=9),
        )
    add("CARD0009", t[HOLDER][0])
    add("CARD0009", t[HOLDER][1])
    add("CARD0009", t[HOLDER][2][:-3] + b"\0\0\0")  # its CRC fails: skipped, not compared
    st.store.apply_feed(feed(0, changes))
    yield st
    st.stop()


def test_threshold_rises_with_the_templates_compared(station, fingers):
    v, engine = station.verifier, station.verifier.engine
    base = matcher.THRESHOLDS[engine.threshold_name]
    recorded = {}
    for card, n in (("CARD0001", 1), ("CARD0003", 3), ("CARD0006", 6), ("CARD0009", 2)):
        r = v.verify_image(card, fingers[HOLDER][3])
        assert r.outcome == Outcome.MATCH, (card, r.score, r.threshold)
        assert r.threshold == pytest.approx(round(engine.threshold_for(n), 6), abs=1e-4), card
        assert r.threshold == pytest.approx(matcher.decision_threshold(engine.threshold_name, n), abs=1e-4)
        recorded[n] = r.threshold
    assert recorded[1] == pytest.approx(base, abs=1e-4)
    assert recorded[1] < recorded[2] < recorded[3] < recorded[6]


def test_more_templates_never_turn_a_rejection_into_an_acceptance_by_chance(station, fingers):
    """The stranger's best score can only grow with the templates, and the threshold grows faster
    than the chance an impostor's best reaches it (matcher.decision): every card rejects him."""
    v = station.verifier
    for card in ("CARD0001", "CARD0003", "CARD0006"):
        for press in fingers[STRANGER]:
            r = v.verify_image(card, press)
            assert r.outcome == Outcome.NO_MATCH, (card, r.score, r.threshold)
            assert r.score < r.threshold
    r = v.verify_image("CARD0006", fingers[DELEGATE][3])
    assert r.outcome == Outcome.DELEGATE_MATCH and r.threshold == pytest.approx(
        station.verifier.engine.threshold_for(6), abs=1e-4
    )
