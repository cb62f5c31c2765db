"""The manager against Hugging Face as it really behaves, on the manual clock: readiness through
the health route, wakes that always start, HF's own idle timer and replica counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.operations import WAKE_NUDGE
from crazy_gary.core.routing import Router
from crazy_gary.core.scaling import wanted_idle_timer
from crazy_gary.core.status import EndpointStatus

from ._specs import SPECS
from .fakes import FakeManagement

RUNNING, STARTING, SLEEPING = EndpointStatus.RUNNING, EndpointStatus.STARTING, EndpointStatus.SLEEPING


@asynccontextmanager
async def managed(
    clock: ManualClock, hf: FakeManagement, **options: Any
) -> AsyncIterator[tuple[HuggingFaceEndpointManager, list[ManagerEvent]]]:
    events: list[ManagerEvent] = []
    manager = HuggingFaceEndpointManager(
        SPECS, hf, clock, wake_timeout=300, auto_sleep=900, poll_interval=10, poll_fast_interval=1, **options
    )
    manager.subscribe(events.append)
    async with manager:
        await clock.settle()
        yield manager, events


def configured(events: list[ManagerEvent]) -> list[ManagerEvent]:
    return [e for e in events if e.kind == "operation_done" and e.operation == "configure"]


def done(events: list[ManagerEvent], operation: str) -> Callable[[], ManagerEvent]:
    return lambda: next(e for e in events if e.kind == "operation_done" and e.operation == operation)


async def test_running_at_hf_is_starting_until_the_health_route_answers(clock: ManualClock) -> None:
    """An endpoint HF reports running whose model loads for 6 s stays `starting`, gets no request,
    and a request held for it goes out as soon as the health route answers, not at the next poll."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})
    async with managed(clock, hf) as (manager, _):
        router = Router(manager, clock, fallback_wait=0)
        manager.wake("120b")
        hf.healthy = False
        await clock.advance(22)
        assert manager.endpoint("120b").hf_running
        assert manager.status("120b").status is STARTING
        assert router.reason("120b") is not None  # nothing is sent to it
        routed = asyncio.ensure_future(router.route("120b"))
        await clock.advance(6)
        assert not routed.done()
        hf.healthy = True
        await clock.advance(0.5)
        assert routed.done() and routed.result().key == "120b"
        view = manager.status("120b")
        assert view.status is RUNNING
        assert manager.endpoint("120b").cold_start == pytest.approx(28.5, abs=0.6)  # measured to readiness
        assert manager.endpoint("120b").breaker.state.value == "closed"


async def test_an_endpoint_running_at_start_is_read_healthy_before_it_counts_as_running(
    clock: ManualClock,
) -> None:
    """At start an endpoint HF reports running is `running` only once its health route answered."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "paused"})
    async with managed(clock, hf) as (manager, _):
        assert manager.status("120b").status is RUNNING
        assert hf.calls["probe"] >= 1


async def test_a_replica_that_starts_again_must_answer_its_health_route_again(clock: ManualClock) -> None:
    """Healthy once is not healthy for good: after HF restarts the endpoint (initializing, then
    running), it is `starting` again until its health route answers 200 once more."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "paused"})
    async with managed(clock, hf) as (manager, _):
        assert manager.status("120b").status is RUNNING
        hf.records["gpt-oss-120b"].state = "initializing"
        hf.healthy = False
        await clock.advance(10)
        assert manager.status("120b").status is STARTING
        hf.records["gpt-oss-120b"].state = "running"
        await clock.advance(10)
        assert manager.endpoint("120b").hf_running
        assert manager.status("120b").status is STARTING  # the earlier 200 does not count
        hf.healthy = True
        await clock.advance(10)
        assert manager.status("120b").status is RUNNING


async def test_the_endpoints_own_health_route_is_the_one_asked(clock: ManualClock) -> None:
    """An endpoint whose image declares `healthRoute: /ready` is probed and poked there."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})
    hf.records["gpt-oss-120b"].health_route = "/ready"
    async with managed(clock, hf) as (manager, _):
        manager.wake("120b")
        await clock.advance(25)
        assert manager.status("120b").status is RUNNING
    asked = {route for _, route in hf.routes}
    assert ("poke", "/ready") in hf.routes and ("probe", "/ready") in hf.routes
    assert asked == {"/ready"}


async def test_a_wake_that_the_health_route_does_not_start_sends_inference(clock: ManualClock) -> None:
    """When a GET of the health route does not start a scaled-to-zero endpoint within a few seconds,
    one inference request does; both are in the wake's audit details."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})
    hf.start_on_health = False
    async with managed(clock, hf) as (manager, events):
        manager.wake("120b")
        await clock.advance(WAKE_NUDGE - 1)
        assert hf.calls["poke"] == 1 and hf.calls["inference"] == 0
        await clock.advance(2)
        assert hf.calls["inference"] == 1 and hf.calls["starts"] == 1
        await clock.advance(25)
        assert manager.status("120b").status is RUNNING
        wake = done(events, "wake")()
        assert wake.success and wake.details == {"sent": ["health", "inference"]}
        sent = [e.operation for e in events if e.kind == "wake_request"]
        assert sent == ["health", "inference"]


async def test_a_wake_the_health_route_starts_sends_nothing_more(clock: ManualClock) -> None:
    """Where the health request starts the endpoint, no inference request is sent."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})
    async with managed(clock, hf) as (manager, events):
        manager.wake("120b")
        await clock.advance(30)
        assert manager.status("120b").status is RUNNING
        assert hf.calls["inference"] == 0
        assert done(events, "wake")().details == {"sent": ["health"]}


@pytest.mark.parametrize(
    ("setting", "auto_sleep", "minutes"),
    [("auto", 900, 30), ("auto", 901, 31), ("auto", 0, None), ("off", 900, None), ("45", 900, 45)],
)
def test_the_idle_timer_wanted(setting: str, auto_sleep: float, minutes: int | None) -> None:
    """`auto` is the auto-sleep rounded up to minutes plus 15 (none without auto-sleep); `off` none."""
    assert wanted_idle_timer(setting, auto_sleep) == minutes


async def test_the_safety_net_sets_hfs_idle_timer_at_start(clock: ManualClock) -> None:
    """At start HF's idle timer of each endpoint is set to auto-sleep + 15 minutes, audited as
    `configure` by crazy-gary; a paused endpoint waits for its resume."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})
    hf.records["gpt-oss-20b"].min_replica = hf.records["gpt-oss-20b"].max_replica = 0
    async with managed(clock, hf, hf_scale_to_zero="auto") as (manager, events):
        assert hf.updates == [("gpt-oss-120b", 0, 1, 30)]
        (entry,) = configured(events)
        assert entry.actor == "crazy-gary" and entry.success
        assert entry.details is not None and entry.details["scale_to_zero_timeout"] == [60, 30]
        assert manager.status("120b").hf_scale_to_zero_timeout == 30


async def test_the_safety_net_off_leaves_hf_alone(clock: ManualClock) -> None:
    """With `off` nothing of HF's scaling is changed."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "scaledToZero"})
    async with managed(clock, hf, hf_scale_to_zero="off") as (_, events):
        await clock.advance(5)
        assert hf.updates == [] and configured(events) == []


async def test_replica_counts_are_put_back_after_pause_and_resume(clock: ManualClock) -> None:
    """A pause (counts 0) then a resume (counts 1) through crazy-gary leaves the counts as they were
    before the pause, so that HF's own idle timer works again; audited as `configure`."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "running"})
    hf.records["gpt-oss-120b"].scale_to_zero_timeout = 30
    async with managed(clock, hf, hf_scale_to_zero="auto", sleep_mode="pause") as (manager, events):
        manager.sleep("120b")
        await clock.advance(3)
        assert hf.records["gpt-oss-120b"].max_replica == 0
        manager.wake("120b")
        await clock.advance(25)
        assert manager.status("120b").status is RUNNING
        record = hf.records["gpt-oss-120b"]
        assert (record.min_replica, record.max_replica, record.scale_to_zero_timeout) == (0, 1, 30)
        assert done(events, "wake")().details == {"sent": ["resume"]}
        after_resume = [e for e in configured(events) if e.key == "120b"]
        assert after_resume and after_resume[-1].details is not None
        assert after_resume[-1].details["min_replica"] == [1, 0]


async def test_the_safety_net_waits_for_a_namespace_that_could_not_be_read_at_start(
    clock: ManualClock,
) -> None:
    """When HF cannot be read at start, HF's idle timer is set as soon as it answers."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "scaledToZero"})
    hf.down = True
    async with managed(clock, hf, hf_scale_to_zero="auto") as (_, events):
        await clock.advance(3)
        assert hf.updates == []
        hf.down = False
        await clock.advance(12)
        assert sorted(hf.updates) == [("gpt-oss-120b", 0, 1, 30), ("gpt-oss-20b", 0, 1, 30)]
        assert len(configured(events)) == 2


async def test_an_endpoint_whose_model_never_loads_says_so_and_still_sleeps(clock: ManualClock) -> None:
    """An endpoint HF reports running whose health route never answers 200 stays `starting`, says why
    once a wake would have timed out, and is put to sleep after auto-sleep all the same: it is billed."""
    hf = FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "scaledToZero"})
    hf.healthy = False
    async with managed(clock, hf) as (manager, _):
        assert manager.status("120b").status is STARTING
        assert manager.status("120b").error is None
        await clock.advance(301)
        view = manager.status("120b")
        assert view.status is STARTING and view.error is not None and "/health" in view.error
        await clock.advance(600)
        assert hf.calls["scale-to-zero"] == 1
        assert manager.status("120b").status is SLEEPING
