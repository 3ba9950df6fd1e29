"""Fixtures of the station tests."""

from __future__ import annotations

import pytest

from tests.edge.helpers import sensor_fingers


@pytest.fixture(scope="session")
def fingers():
    """Impressions of three synthetic fingers (tests.edge.helpers: HOLDER, DELEGATE, STRANGER)."""
    return sensor_fingers()
