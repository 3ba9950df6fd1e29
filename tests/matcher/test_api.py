"""The public API stays callable across calls (a submodule must not shadow a function)."""

import numpy as np

from fpverify import matcher


def test_quality_callable_twice():
    rng = np.random.default_rng(0)
    img = (rng.random((300, 300)) * 255).astype(np.uint8)
    for _ in range(2):
        report = matcher.quality(img)
        assert 0 <= report.score <= 100
    assert callable(matcher.quality)
