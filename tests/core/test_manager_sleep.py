"""HuggingFaceEndpointManager on the manual clock: sleep, and auto-sleep after the idle period."""

from __future__ import annotations

import asyncio

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager

from ._specs import RUNNING, SLEEPING, SPECS
from .fakes import FakeManagement


async def test_auto_sleep_after_idle_period_with_reads(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A woken, unused endpoint sleeps 900 s after it began running; status reads do not count."""
    manager.wake("120b")
    await clock.advance(20)
    assert manager.status("120b").status is RUNNING
    for _ in range(89):
        await clock.advance(10)
        assert manager.status("120b").status is RUNNING  # reading is not activity
    await clock.advance(15)
    assert hf.calls["scale-to-zero"] == 1
    view = manager.status("120b")
    assert view.status is SLEEPING
    assert view.sleep_time is not None


async def test_activity_resets_the_countdown(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Inference activity pushes auto-sleep to 900 s after the last request."""
    manager.wake("120b")
    await clock.advance(20)
    await clock.advance(800)
    async with manager.lease("120b"):
        pass  # a request started and ended
    await clock.advance(800)
    assert manager.status("120b").status is RUNNING
    assert manager.status("120b").auto_sleep_in == pytest.approx(100, abs=1)
    await clock.advance(101)
    assert manager.status("120b").status is SLEEPING
    assert hf.calls["scale-to-zero"] == 1


async def test_no_auto_sleep_while_in_flight(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """An endpoint with a request in flight is never put to sleep; the countdown restarts at its end."""
    manager.wake("120b")
    await clock.advance(20)
    release = asyncio.Event()

    async def long_request() -> None:
        async with manager.lease("120b"):
            await release.wait()

    request = asyncio.create_task(long_request())
    await clock.advance(2000)
    assert manager.status("120b").in_flight == 1
    assert hf.calls["scale-to-zero"] == 0
    release.set()
    await request
    await clock.advance(899)
    assert manager.status("120b").status is RUNNING
    await clock.advance(2)
    assert hf.calls["scale-to-zero"] == 1


async def test_pause_sleep_mode(clock: ManualClock, hf: FakeManagement) -> None:
    """With ENDPOINT_SLEEP_MODE=pause, sleep pauses the endpoint."""
    hf.records["gpt-oss-120b"].state = "running"
    async with HuggingFaceEndpointManager(SPECS, hf, clock, sleep_mode="pause") as manager:
        await clock.settle()
        result = manager.sleep("120b")
        assert result.started
        await clock.settle()
        assert hf.calls["pause"] == 1
        assert manager.status("120b").status is SLEEPING
        assert manager.status("120b").hf_state == "paused"


async def test_sleep_of_sleeping_endpoint_changes_nothing(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Sleep of an endpoint already asleep answers its state and calls nothing."""
    result = manager.sleep("120b")
    assert not result.started and result.status is SLEEPING
    await clock.settle()
    assert hf.calls["scale-to-zero"] == 0
