"""Fixtures shared by the core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager

from ._specs import SPECS
from .fakes import FakeManagement


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock the manager, its fakes and the test share: time moves only when told."""
    return ManualClock()


@pytest.fixture
def hf(clock: ManualClock) -> FakeManagement:
    return FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})


@pytest.fixture
async def manager(clock: ManualClock, hf: FakeManagement) -> AsyncIterator[HuggingFaceEndpointManager]:
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, wake_timeout=300, auto_sleep=900, poll_interval=10, poll_fast_interval=1
    ) as manager:
        await clock.settle()
        yield manager
