"""A request's lease on the manual clock: in flight, activity, the breaker's claim and outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.breaker import BreakerState
from crazy_gary.core.manager import HuggingFaceEndpointManager

from ._specs import SPECS
from .fakes import FakeManagement


@pytest.fixture
def hf(clock: ManualClock) -> FakeManagement:
    return FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "running"})


@pytest.fixture
async def manager(clock: ManualClock, hf: FakeManagement) -> AsyncIterator[HuggingFaceEndpointManager]:
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, poll_interval=10, poll_fast_interval=1, breaker_failures=1, breaker_cooldown=30
    ) as manager:
        await clock.settle()
        yield manager


async def half_open(manager: HuggingFaceEndpointManager, clock: ManualClock) -> None:
    breaker = manager.endpoint("120b").breaker
    breaker.acquire()
    breaker.record_failure()
    await clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN


async def test_in_flight_with_activity_at_both_ends(
    manager: HuggingFaceEndpointManager, clock: ManualClock
) -> None:
    """In flight inside the block, activity at both ends, and waiters told when it ends."""
    endpoint = manager.endpoint("120b")
    async with manager.lease("120b") as lease:
        assert lease.key == "120b" and endpoint.in_flight == 1
        assert endpoint.last_activity == clock.now()
        ended = endpoint.updated()
        await clock.advance(7)
    assert endpoint.in_flight == 0
    assert endpoint.last_activity == clock.now()
    assert ended.is_set()


async def test_leaving_without_an_outcome_releases_the_trial(
    manager: HuggingFaceEndpointManager, clock: ManualClock
) -> None:
    """Left without an outcome, a lease releases its half-open trial and counts nothing."""
    await half_open(manager, clock)
    breaker = manager.endpoint("120b").breaker
    release = asyncio.Event()

    async def request() -> None:
        async with manager.lease("120b"):
            await release.wait()

    task = asyncio.create_task(request())
    await clock.settle()
    assert not breaker.allows()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allows()
    assert manager.status("120b").in_flight == 0


async def test_outcomes_settle_the_breaker_once(
    manager: HuggingFaceEndpointManager, clock: ManualClock
) -> None:
    """`failed()` counts, `gone_cold()` does not, `succeeded()` closes; the first outcome wins."""
    breaker = manager.endpoint("120b").breaker
    async with manager.lease("120b") as lease:
        lease.gone_cold()
        lease.failed()  # ignored: the outcome was given
    assert breaker.state is BreakerState.CLOSED
    async with manager.lease("120b") as lease:
        lease.failed()
    assert breaker.state is BreakerState.OPEN
    await clock.advance(30)
    async with manager.lease("120b") as lease:
        lease.succeeded()
    assert breaker.state is BreakerState.CLOSED


async def test_a_detached_lease_ends_when_closed(
    manager: HuggingFaceEndpointManager, clock: ManualClock
) -> None:
    """A lease detached in its block (an answer still streaming) ends at `aclose()`, once."""
    async with manager.lease("120b") as lease:
        kept = lease.detach()
    assert manager.status("120b").in_flight == 1
    await clock.advance(3)
    await kept.aclose()
    await kept.aclose()
    assert manager.status("120b").in_flight == 0
    assert manager.endpoint("120b").last_activity == clock.now()


async def test_still_running_reads_the_state_again(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """`still_running` waits for a fresh reading of HF, hurried, rather than trusting the last one."""
    hf.records["gpt-oss-120b"].state = "scaledToZero"
    async with manager.lease("120b") as lease:
        assert manager.status("120b").status.value == "running"  # as last read
        assert not await lease.still_running(within=5)
        assert hf.calls["list"] >= 2
