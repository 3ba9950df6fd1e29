"""The station's decision threshold comes from its settings: a named operating point of the matcher,
or an explicit score that replaces it; a name the matcher does not know is a clear config error."""

from __future__ import annotations

import types

import pytest

from fpverify import matcher
from fpverify.edge.config import ConfigError, load_config
from fpverify.edge.workflow import Engine
from tests.edge.helpers import write_config


def test_unknown_operating_point_is_a_config_error(tmp_path):
    path = write_config(tmp_path / "st", extra='threshold = "fmr_1e-9"')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "station.threshold" in text and "fmr_1e-9" in text
    assert all(name in text for name in matcher.THRESHOLDS)  # it says which names there are


def test_the_operating_point_decides_without_a_score(tmp_path):
    cfg = load_config(write_config(tmp_path / "st", extra='threshold = "fmr_1e-3"'))
    assert cfg.station.threshold_score is None
    assert Engine.for_station(cfg.station).threshold == matcher.THRESHOLDS["fmr_1e-3"]


def test_threshold_score_replaces_the_operating_point_and_leaves_the_matcher_alone(tmp_path):
    before = dict(matcher.THRESHOLDS)
    cfg = load_config(write_config(tmp_path / "st", extra="threshold_score = 0.31"))
    engine = Engine.for_station(cfg.station)
    assert engine.threshold == 0.31 and engine.threshold_name == "fmr_1e-4"
    assert matcher.THRESHOLDS == before
    assert Engine.for_station(load_config(write_config(tmp_path / "other")).station).threshold == before["fmr_1e-4"]


@pytest.mark.parametrize("value", ["0", "-0.2", "1.5", "nan", "inf", '"high"'])
def test_threshold_score_out_of_range_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="station.threshold_score"):
        load_config(write_config(tmp_path / "st", extra=f"threshold_score = {value}"))


def test_engine_needs_the_matchers_thresholds():
    """No silent default: a matcher without THRESHOLDS is an error, not an empty table."""
    fake = types.SimpleNamespace(warm_up=lambda: None)
    with pytest.raises(AttributeError):
        Engine("fmr_1e-4", matcher_module=fake)
    with pytest.raises(ValueError, match="unknown operating point"):
        Engine("fmr_1e-9")
    assert Engine("fmr_1e-4", threshold_score=0.5).threshold == 0.5
