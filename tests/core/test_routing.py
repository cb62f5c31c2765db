"""The router on the manual clock: serve, hold, fall back, and why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.routing import FallbackReason, Router
from crazy_gary.errors import NoCapacity

from ._specs import SPECS
from .fakes import FakeManagement


@pytest.fixture
def hf(clock: ManualClock) -> FakeManagement:
    return FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})


@pytest.fixture
async def manager(clock: ManualClock, hf: FakeManagement) -> AsyncIterator[HuggingFaceEndpointManager]:
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, poll_interval=10, poll_fast_interval=1
    ) as manager:
        await clock.settle()
        yield manager


def router(manager: HuggingFaceEndpointManager, clock: ManualClock, **options: float) -> Router:
    return Router(
        manager,
        clock,
        fallback_wait=options.get("fallback_wait", 5),
        max_pending=int(options.get("max_pending", 256)),
    )


async def test_running_primary_serves(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A running primary is chosen at once, with no reason."""
    hf.records["gpt-oss-120b"].state = "running"
    await clock.advance(10)
    decision = await router(manager, clock).route("120b")
    assert decision.key == "120b"
    assert decision.reason is None
    assert decision.url == "http://sim/gpt-oss-120b"
    assert decision.held == 0


async def test_sleeping_primary_is_woken_and_fallback_answers_after_the_wait(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """The primary is woken; after fallback_wait the running fallback serves with primary_sleeping."""
    pending = asyncio.create_task(router(manager, clock).route("120b"))
    await clock.advance(4.9)
    assert not pending.done()
    assert manager.status("120b").pending == 1
    await clock.advance(0.2)
    decision = await pending
    assert decision.key == "20b"
    assert decision.reason is FallbackReason.PRIMARY_SLEEPING
    assert decision.held == pytest.approx(5.0)  # held the whole wait for the primary
    assert hf.calls["starts"] == 1
    assert manager.status("120b").pending == 0


async def test_starting_primary_reason(manager: HuggingFaceEndpointManager, clock: ManualClock) -> None:
    """A primary already starting gives primary_starting; with no wait the fallback answers at once."""
    manager.wake("120b")
    await clock.settle()
    decision = await router(manager, clock, fallback_wait=0).route("120b")
    assert decision.key == "20b"
    assert decision.reason is FallbackReason.PRIMARY_STARTING


async def test_primary_that_runs_within_the_wait_serves(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """When the primary runs before fallback_wait ends, it serves."""
    hf.cold_start = 3
    pending = asyncio.create_task(router(manager, clock).route("120b"))
    await clock.advance(4)
    decision = await pending
    assert decision.key == "120b"
    assert decision.reason is None


async def test_error_primary_is_not_woken(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """An endpoint in error is never woken by a request; the fallback answers with primary_error."""
    hf.records["gpt-oss-120b"].state = "failed"
    await clock.advance(10)
    decision = await router(manager, clock).route("120b")
    assert decision.key == "20b"
    assert decision.reason is FallbackReason.PRIMARY_ERROR
    assert hf.calls["resume"] == 0


async def test_open_circuit_sends_to_fallback(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A running primary with an open circuit is bypassed with circuit_open."""
    hf.records["gpt-oss-120b"].state = "running"
    await clock.advance(10)
    breaker = manager.endpoint("120b").breaker
    for _ in range(5):
        breaker.acquire()
        breaker.record_failure()
    decision = await router(manager, clock).route("120b")
    assert decision.key == "20b"
    assert decision.reason is FallbackReason.CIRCUIT_OPEN
    assert manager.status("120b").circuit == "open"


async def test_nothing_running_holds_until_one_runs(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """With the whole chain asleep, both are woken and the request is held until the first runs."""
    hf.records["gpt-oss-20b"].state = "scaledToZero"
    await clock.advance(10)
    pending = asyncio.create_task(router(manager, clock, fallback_wait=1).route("120b"))
    await clock.advance(19)
    assert not pending.done()
    await clock.advance(2)
    decision = await pending
    assert decision.key == "120b"
    assert 19 < decision.held <= 21  # the fallback's wait and the hold for any, together
    assert hf.calls["starts"] == 2


async def test_no_capacity_after_the_wake_timeout_with_retry_after(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Held past the wake timeout: NoCapacity with a Retry-After of at least a second."""
    hf.records["gpt-oss-20b"].state = "scaledToZero"
    hf.cold_start = 10_000
    await clock.advance(10)
    pending = asyncio.create_task(router(manager, clock, fallback_wait=1).route("120b"))
    for _ in range(32):
        await clock.advance(10)
    with pytest.raises(NoCapacity) as raised:
        await pending
    assert raised.value.retry_after >= 1


async def test_a_hold_ends_as_soon_as_every_endpoint_it_waits_for_has_failed(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Both endpoints fail while a request is held for them: NoCapacity at their next reading, not
    at the wake timeout (nothing changes a failed endpoint until an operator acts)."""
    hf.records["gpt-oss-20b"].state = "scaledToZero"
    hf.cold_start = 10_000
    await clock.advance(10)
    pending = asyncio.create_task(router(manager, clock, fallback_wait=1).route("120b"))
    await clock.advance(5)
    assert not pending.done()
    hf.records["gpt-oss-120b"].state = "failed"
    await clock.advance(2)
    assert not pending.done()  # the fallback may still start
    hf.records["gpt-oss-20b"].state = "failed"
    await clock.advance(2)
    assert pending.done()
    with pytest.raises(NoCapacity):
        await pending


async def test_max_pending_refuses_at_once(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Beyond max_pending held requests, the next one is refused at once."""
    hf.records["gpt-oss-20b"].state = "failed"
    await clock.advance(10)
    routing = router(manager, clock, fallback_wait=1, max_pending=2)
    held = [asyncio.create_task(routing.route("120b")) for _ in range(2)]
    await clock.advance(2)
    assert manager.status("120b").pending == 2
    with pytest.raises(NoCapacity):
        await routing.route("120b")
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert manager.status("120b").pending == 0


async def test_excluded_primary_reports_the_given_reason(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """After the primary failed a request, the fallback serves it with the failure's reason."""
    hf.records["gpt-oss-120b"].state = "running"
    await clock.advance(10)
    decision = await router(manager, clock).route(
        "120b", exclude=frozenset({"120b"}), why=FallbackReason.PRIMARY_TIMEOUT
    )
    assert decision.key == "20b"
    assert decision.reason is FallbackReason.PRIMARY_TIMEOUT


async def test_stop_holding_ends_held_requests_at_once_with_a_short_retry_after(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """When the server stops, a held request gets NoCapacity at once (not at the wake timeout), and
    a request arriving afterwards is not held at all; a running fallback still serves."""
    hf.records["gpt-oss-20b"].state = "scaledToZero"
    hf.cold_start = 10_000
    await clock.advance(10)
    routing = router(manager, clock, fallback_wait=1)
    held = asyncio.create_task(routing.route("120b"))
    await clock.advance(2)
    assert not held.done()
    routing.stop_holding()
    with pytest.raises(NoCapacity) as raised:
        await held
    assert 1 <= raised.value.retry_after <= 5
    assert "stopping" in raised.value.message
    with pytest.raises(NoCapacity):
        await routing.route("120b")
    assert manager.status("120b").pending == 0
    hf.records["gpt-oss-20b"].state = "running"
    await clock.advance(10)
    decision = await routing.route("120b")
    assert decision.key == "20b"


async def test_a_running_endpoint_still_serves_while_the_management_api_is_down(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Answering does not need the management API: an endpoint HF last read running, its model
    loaded, still serves while HF cannot be read (`unknown`); a sleeping one is not thought up."""
    hf.records["gpt-oss-120b"].state = "running"
    await clock.advance(10)
    assert manager.status("120b").status.value == "running"
    hf.down = True
    await clock.advance(30)
    assert manager.status("120b").status.value == "unknown"
    decision = await router(manager, clock).route("120b")
    assert (decision.key, decision.reason) == ("120b", None)
    hf.down = False
    hf.records["gpt-oss-120b"].state = "scaledToZero"
    await clock.advance(30)
    hf.down = True
    await clock.advance(30)
    assert manager.status("120b").status.value == "unknown"
    assert router(manager, clock).reason("120b") is FallbackReason.PRIMARY_ERROR
