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


# -- the cohort rule (issue 17): each template's impostor-cohort statistics set its own raw threshold


def _with_stats(add, mean: float | None, sd: float | None):
    return add.model_copy(update={"cohort_mean": mean, "cohort_sd": sd})


def _cohort_station(tmp_path, fingers, stats, extra: str = ""):
    """CARD0003 / CARD0001: the holder's first three presses / first press, `stats[k]` on press k
    ((mean, sd) or None); CARD0006 adds the delegate's three presses with the same statistics."""
    cfg = load_config(write_config(tmp_path / "st", extra=extra))
    st = Station(cfg, sensor=None, sync=False, mqtt=False)
    t = {seed: [matcher.extract(img).to_bytes() for img in fingers[seed][:3]] for seed in (HOLDER, DELEGATE)}
    changes: list = []

    def add(card, blob, st_k, **kw):
        mean, sd = st_k if st_k is not None else (None, None)
        changes.append(_with_stats(template_add(len(changes) + 1, f"t{len(changes)}", card, blob, **kw), mean, sd))

    add("CARD0001", t[HOLDER][0], stats[0])
    for k in range(3):
        add("CARD0003", t[HOLDER][k], stats[k])
        add("CARD0006", t[HOLDER][k], stats[k])
        add("CARD0006", t[DELEGATE][k], stats[k], role="delegate", delegate_id="wife-01",
            valid_until=now() + timedelta(days=9))
    st.store.apply_feed(feed(0, changes))
    return st, t


def _scores(probe_img, blobs):
    probe = matcher.extract(probe_img)
    return [float(matcher.compare(probe, matcher.Template.from_bytes(b))) for b in blobs]


def test_cohort_rule_sets_each_templates_raw_threshold(tmp_path, fingers):
    """Statistics chosen around the genuine press's real scores: just above each template's score the
    card rejects (the raw rule would accept), just below it accepts; the result stays on the raw
    scale: the winning template's raw score and its own raw threshold."""
    point = "fmr_1e-4"
    c3 = matcher.cohort_threshold(point, 3)
    probe = fingers[HOLDER][3]
    holder_blobs = [matcher.extract(img).to_bytes() for img in fingers[HOLDER][:3]]
    s = _scores(probe, holder_blobs)
    assert max(s) >= matcher.decision_threshold(point, 3)  # the raw rule accepts this press
    sd = 0.02
    above = [(si - sd * c3 + 0.01, sd) for si in s]  # every threshold 0.01 above its template's score
    st, _ = _cohort_station(tmp_path / "a", fingers, above)
    try:
        r = st.verifier.verify_image("CARD0003", probe)
        assert r.outcome == Outcome.NO_MATCH, (r.score, r.threshold)
        k = max(range(3), key=lambda i: (s[i] - above[i][0]) / sd)
        assert r.score == pytest.approx(s[k], abs=1e-4) and r.threshold == pytest.approx(s[k] + 0.01, abs=1e-4)
    finally:
        st.stop()
    # only the second press's threshold below its score: accepted on that template
    below = [(si - sd * c3 + (0.01 if i != 1 else -0.01), sd) for i, si in enumerate(s)]
    st, _ = _cohort_station(tmp_path / "b", fingers, below)
    try:
        r = st.verifier.verify_image("CARD0003", probe)
        assert r.outcome == Outcome.MATCH, (r.score, r.threshold)
        assert r.score == pytest.approx(s[1], abs=1e-4) and r.threshold == pytest.approx(s[1] - 0.01, abs=1e-4)
        assert r.score >= r.threshold
        # the stranger against the same statistics: rejected (his scores are far below the holder's)
        for press in fingers[STRANGER]:
            r = st.verifier.verify_image("CARD0003", press)
            assert r.outcome == Outcome.NO_MATCH and r.score < r.threshold, (r.score, r.threshold)
    finally:
        st.stop()


def test_cohort_threshold_rises_with_the_templates_compared(tmp_path, fingers):
    mean, sd = 0.05, 0.02
    st, _ = _cohort_station(tmp_path, fingers, [(mean, sd)] * 3)
    try:
        engine, recorded = st.verifier.engine, {}
        for card, n in (("CARD0001", 1), ("CARD0003", 3), ("CARD0006", 6)):
            r = st.verifier.verify_image(card, fingers[STRANGER][0])
            expected = mean + sd * matcher.cohort_threshold(engine.threshold_name, n)
            assert r.threshold == pytest.approx(expected, abs=1e-4), card
            assert r.outcome == Outcome.NO_MATCH
            recorded[n] = r.threshold
        assert recorded[1] < recorded[3] < recorded[6]
        assert matcher.cohort_threshold(engine.threshold_name, 1) == pytest.approx(
            matcher.decision.COHORT_THRESHOLDS[engine.threshold_name])
        # the delegate's press on the card with both: a delegate match at the threshold for n = 6
        r = st.verifier.verify_image("CARD0006", fingers[DELEGATE][3])
        assert r.outcome == Outcome.DELEGATE_MATCH and r.threshold == pytest.approx(recorded[6], abs=1e-4)
    finally:
        st.stop()


def test_one_template_without_statistics_falls_back_to_the_raw_rule(tmp_path, fingers):
    """Mixed cards are never decided half on one scale: statistics so loose that the cohort rule would
    accept the stranger are ignored when one template lacks them."""
    loose = (0.0, 0.001)  # raw threshold about 0.007: the cohort rule would accept anyone
    st, _ = _cohort_station(tmp_path, fingers, [loose, None, loose])
    try:
        point = st.verifier.engine.threshold_name
        r = st.verifier.verify_image("CARD0003", fingers[STRANGER][0])
        assert r.outcome == Outcome.NO_MATCH
        assert r.threshold == pytest.approx(matcher.decision_threshold(point, 3), abs=1e-4)
        r = st.verifier.verify_image("CARD0001", fingers[STRANGER][0])  # its one template has them
        assert r.outcome == Outcome.MATCH and r.threshold == pytest.approx(
            loose[0] + loose[1] * matcher.cohort_threshold(point, 1), abs=1e-4)
    finally:
        st.stop()


def test_explicit_threshold_score_keeps_the_raw_rule(tmp_path, fingers):
    loose = (0.0, 0.001)
    st, _ = _cohort_station(tmp_path, fingers, [loose] * 3, extra="threshold_score = 0.2")
    try:
        for card, n in (("CARD0001", 1), ("CARD0003", 3)):
            r = st.verifier.verify_image(card, fingers[STRANGER][0])
            assert r.outcome == Outcome.NO_MATCH
            assert r.threshold == pytest.approx(matcher.best_of_n(0.2, n), abs=1e-4)
    finally:
        st.stop()
