"""Fixtures shared by the core's tests."""

from __future__ import annotations

import pytest

from crazy_gary.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock the manager, its fakes and the test share: time moves only when told."""
    return ManualClock()
