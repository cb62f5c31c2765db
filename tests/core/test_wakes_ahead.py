"""Wakes ahead of a predicted return (`auto_sleep = "adaptive"`): the returns an endpoint's history
predicts, and a week of nightly batches run by the manager, router and engine on the manual clock
(woken ahead by `adaptive` once two nights of the same kind came, never after an operator's sleep)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.adaptive import AdaptiveIdle, AdaptiveSettings
from crazy_gary.core.breaker import CircuitBreaker
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.gate import ConcurrencyGate
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.core.returns import LEAD, WINDOW, ReturnHistory
from crazy_gary.core.routing import Router
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus
from crazy_gary.core.wakes_ahead import WakesAhead
from crazy_gary.engine import Engine
from crazy_gary.replay.hf import ReplayInference, ReplayManagement

MONDAY = 1_793_577_600.0  # 2026-11-02 00:00 UTC
DAY, HOUR = 86400.0, 3600.0
COLD = 300.0


def batch(day: int, requests: int = 100, jitter: float = 0.0) -> list[float]:
    """A batch job at 02:00 (plus `jitter` s) on day `day` of the week (0 = Monday): `requests`
    requests 3 s apart."""
    start = MONDAY + day * DAY + 2 * HOUR + jitter
    return [start + 3 * index for index in range(requests)]


def history_of(arrivals: list[float], minimum: float = 60.0, maximum: float = 3600.0) -> ReturnHistory:
    """The returns of `arrivals` as an endpoint with these idle bounds sees them."""
    history = ReturnHistory(minimum)
    last: float | None = None
    for at in sorted(arrivals):
        history.observe_arrival(at, returned=last is not None and at - last > maximum)
        last = at
    return history


def test_a_nightly_batch_is_woken_for_a_cold_start_and_a_minute_ahead_of_its_window() -> None:
    rng = random.Random(1)
    arrivals = [at for day in range(4) for at in batch(day, jitter=rng.uniform(0, 120))]
    history = history_of([MONDAY - HOUR, *arrivals])
    planned = history.next_wake(MONDAY + 3 * DAY + 12 * HOUR, COLD)  # Thursday noon
    assert planned is not None
    friday_batch = MONDAY + 4 * DAY + 2 * HOUR
    start, end = planned.window
    assert end - start == WINDOW
    assert start - 120 <= friday_batch - WINDOW / 2 <= start + 120  # centred on a night's batch
    assert planned.wake_at == start - COLD - LEAD


def test_weekends_are_predicted_from_weekends_only() -> None:
    """Five working days of batches say nothing of Saturday; two weekends of them do."""
    working_days = [at for day in range(5) for at in batch(day)]
    history = history_of([MONDAY - HOUR, *working_days])
    assert history.next_wake(MONDAY + 5 * DAY, COLD) is None  # Saturday 00:00
    weekends = [at for day in (5, 6, 12) for at in batch(day)]
    history = history_of([MONDAY - HOUR, *weekends])
    planned = history.next_wake(MONDAY + 13 * DAY, COLD)  # the second Sunday, 00:00
    assert planned is not None and planned.window[0] < MONDAY + 13 * DAY + 2 * HOUR < planned.window[1]


def test_one_night_or_scattered_returns_or_lone_requests_wake_nothing() -> None:
    one_night = history_of([MONDAY - HOUR, *batch(0)])
    assert one_night.next_wake(MONDAY + 12 * HOUR, COLD) is None
    rng = random.Random(2)
    scattered = [
        MONDAY + day * DAY + hour + 3 * index
        for day in range(5)
        for hour in [rng.uniform(0, DAY - HOUR)]
        for index in range(100)
    ]
    assert history_of([MONDAY - DAY, *scattered]).next_wake(MONDAY + 5 * DAY, COLD) is None
    lone = history_of([MONDAY - HOUR, *(at for day in range(5) for at in batch(day, requests=1))])
    assert lone.next_wake(MONDAY + 4 * DAY, COLD) is None  # a wake costs more than one wait


def test_a_night_that_often_fails_to_come_is_not_worth_a_wake() -> None:
    """Batches on two nights of five: a wake would be in vain three times in five."""
    nights = [at for day in (0, 2) for at in batch(day)] + [
        MONDAY + day * DAY + 14 * HOUR for day in range(5)
    ]
    history = history_of([MONDAY - HOUR, *nights])
    planned = history.next_wake(MONDAY + 5 * DAY + 7 * DAY, COLD)
    assert planned is None or abs(planned.window[0] + WINDOW / 2 - (MONDAY + 12 * DAY + 2 * HOUR)) > WINDOW


def adaptive_spec() -> EndpointSpec:
    return EndpointSpec(
        key="120b",
        url="demo/gpt-oss-120b",
        namespace="demo",
        name="gpt-oss-120b",
        price_per_hour=5.0,
        adaptive=AdaptiveSettings(minimum=60, maximum=3600),
    )


async def run_week(
    arrivals: list[float], *, operator: Sequence[tuple[float, str]] = ()
) -> tuple[dict[int, int], list[ManagerEvent]]:
    """`arrivals` sent through the manager, router and engine on the manual clock against the
    simulator's state machine; an operator wakes or puts to sleep the endpoint at the times of
    `operator` ((time, "wake" or "sleep")). Returns the requests that met a cold start, by day, and
    the manager's events."""
    clock = ManualClock(start=MONDAY - 2 * HOUR, until_idle=True)
    hf = ReplayManagement.with_cold_start(clock, COLD, ["gpt-oss-120b"])
    manager = HuggingFaceEndpointManager(
        [adaptive_spec()], hf, clock, wake_timeout=600, poll_interval=600, poll_fast_interval=1
    )
    engine = Engine(
        manager,
        Router(manager, clock, fallback_wait=5, max_pending=10_000),
        ReplayInference(hf),
        clock,
        token="t",
    )
    cold: dict[int, int] = {}
    events: list[ManagerEvent] = []
    body = json.dumps({"model": "120b", "messages": [], "max_tokens": 1}).encode()

    async def send(at: float) -> None:
        if manager.status("120b").status is not EndpointStatus.RUNNING:
            day = int((at - MONDAY) // DAY)
            cold[day] = cold.get(day, 0) + 1
        exchange = await engine.open(engine.parse(body))
        await exchange.aclose()

    async with manager:
        manager.subscribe(events.append)
        tasks = []
        for at, what in sorted([(at, "request") for at in arrivals] + list(operator)):
            await clock.advance(max(0.0, at - clock.now()))
            if what == "request":
                tasks.append(asyncio.ensure_future(send(at)))
            else:
                manager.operate("wake" if what == "wake" else "sleep", "120b", actor="api")
        await clock.advance(2 * HOUR)
        await asyncio.gather(*tasks)
    return cold, events


async def test_a_week_of_nightly_batches_is_woken_ahead_on_working_days_once_two_came() -> None:
    """Batches at 02:00 every night and a request each afternoon: Monday's and Tuesday's batches
    meet a cold start, Wednesday's to Friday's find the endpoint woken ahead by `adaptive`; the
    weekend, of another kind, has no history of its own yet. A week in milliseconds."""
    rng = random.Random(3)
    arrivals = [at for day in range(7) for at in batch(day, jitter=rng.uniform(0, 120))]
    arrivals += [MONDAY + day * DAY + 15 * HOUR for day in range(7)]
    cold, events = await run_week(arrivals)
    woken = [e for e in events if e.kind == "operation" and e.actor == "adaptive"]
    assert len(woken) == 3
    batch_cold = {day: cold.get(day, 0) - 1 for day in range(7)}  # each afternoon's request waits
    assert [batch_cold[day] > 0 for day in range(7)] == [True, True, False, False, False, True, True]


async def test_an_endpoint_an_operator_put_to_sleep_is_not_woken_ahead() -> None:
    """The operator wakes it on Tuesday evening and puts it to sleep once it runs: Wednesday's
    batch is not woken for (it meets a cold start); that batch's wake is a request's, so Thursday's
    and Friday's are woken for again."""
    arrivals = [at for day in range(5) for at in batch(day)]
    tuesday_evening = MONDAY + DAY + 20 * HOUR
    operator = [(tuesday_evening, "wake"), (tuesday_evening + COLD + 30, "sleep")]
    cold, events = await run_week(arrivals, operator=operator)
    operations = [(e.actor, e.operation) for e in events if e.kind == "operation"]
    assert ("api", "sleep") in operations  # it was running, so the operator's sleep was the one
    assert cold.get(2, 0) > 0 and cold.get(3, 0) == 0 and cold.get(4, 0) == 0
    assert len([e for e in events if e.kind == "operation" and e.actor == "adaptive"]) == 2


def asleep_endpoint(hf_state: str = "scaledToZero", slept_by: str | None = "auto-sleep") -> Endpoint:
    """An adaptive endpoint asleep at HF, that learnt four nights (Monday to Thursday) of batches."""
    endpoint = Endpoint(
        spec=adaptive_spec(),
        auto_sleep=900,
        wake_timeout=600,
        breaker=CircuitBreaker(ManualClock()),
        gate=ConcurrencyGate(None, ManualClock()),
        adaptive=AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600)),
        upstream=UpstreamEndpoint("demo", "gpt-oss-120b", hf_state),
        reachable=True,
        seen=True,
        slept_by=slept_by,
    )
    endpoint.learn_from([(MONDAY - HOUR, 1), *((at, 1) for day in range(4) for at in batch(day))])
    return endpoint


class Wakes:
    """The loop of one endpoint on the manual clock, and the wakes it asked for (key, actor, when)."""

    def __init__(
        self, endpoint: Endpoint, clock: ManualClock, leading: list[bool], *, alone: bool = True
    ) -> None:
        self.asked: list[tuple[str, str, float]] = []
        self.loop = WakesAhead(
            [endpoint],
            clock,
            lambda key, actor: self.asked.append((key, actor, clock.now())),
            lambda: leading[0],
            alone=alone,
        )


async def run_loop(
    wakes: Wakes, clock: ManualClock, steps: Sequence[tuple[float, Callable[[], None]]]
) -> None:
    """Run the loop until the last of `steps` (wall time, what to change then) and an hour more."""

    async def forever() -> None:
        while True:
            await wakes.loop.run_pass()

    task = asyncio.ensure_future(forever())
    try:
        for at, change in steps:
            await clock.advance(at - clock.now())
            change()
        await clock.advance(HOUR)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


FRIDAY_WAKE = MONDAY + 4 * DAY + 2 * HOUR - WINDOW / 2 - COLD - LEAD  # Friday's batch, woken ahead


async def test_a_wake_that_cannot_be_made_at_its_time_is_made_as_soon_as_it_can() -> None:
    """Another replica leads when Friday's wake is due, then this one takes over two minutes
    later: it wakes within a minute of that (late, but up before the window ends), once."""
    clock = ManualClock(start=MONDAY + 3 * DAY + 12 * HOUR)
    endpoint, leading = asleep_endpoint(), [False]
    wakes = Wakes(endpoint, clock, leading)
    await run_loop(wakes, clock, [(FRIDAY_WAKE + 120, lambda: leading.__setitem__(0, True))])
    assert [actor for _, actor, _ in wakes.asked] == ["adaptive"]
    assert FRIDAY_WAKE + 120 <= wakes.asked[0][2] <= FRIDAY_WAKE + 180
    assert endpoint.awake_until == MONDAY + 4 * DAY + 2 * HOUR + WINDOW / 2


async def test_unreachable_at_its_time_it_is_woken_at_the_next_reading() -> None:
    clock = ManualClock(start=MONDAY + 3 * DAY + 12 * HOUR)
    endpoint = asleep_endpoint()
    wakes = Wakes(endpoint, clock, [True])

    def unreachable() -> None:
        endpoint.reachable = False

    def reachable_again() -> None:
        endpoint.reachable = True
        endpoint.notify()

    await run_loop(wakes, clock, [(FRIDAY_WAKE - 1, unreachable), (FRIDAY_WAKE + 90, reachable_again)])
    assert [at for _, _, at in wakes.asked] == [FRIDAY_WAKE + 90]


async def test_an_operators_pause_or_sleep_is_left_alone_and_hfs_own_timer_is_not() -> None:
    clock = ManualClock(start=MONDAY + 3 * DAY + 12 * HOUR)
    for hf_state, slept_by, alone, woken in [
        ("scaledToZero", None, True, True),  # HF's own idle timer
        ("paused", None, True, False),  # paused by hand in HF's interface: HF's timer never pauses
        ("scaledToZero", "api", True, False),  # an operator's sleep through crazy-gary
        ("scaledToZero", None, False, False),  # with replicas: maybe an operator's through another
        ("scaledToZero", "auto-sleep", False, True),  # the leader's own auto-sleep
    ]:
        endpoint = asleep_endpoint(hf_state, slept_by)
        wakes = Wakes(endpoint, clock, [True], alone=alone)
        await run_loop(wakes, clock, [(FRIDAY_WAKE, lambda: None)])
        assert bool(wakes.asked) is woken, (hf_state, slept_by, alone)
        clock = ManualClock(start=MONDAY + 3 * DAY + 12 * HOUR)


def test_a_window_overlapping_the_one_acted_on_is_acted_on_too() -> None:
    """Two batches of a minute 12 minutes apart each night, with auto_sleep_max 10 minutes: both
    are returns; once the first window is acted on, the second, which begins before the first
    ends, is next."""
    nights = [
        at for day in range(4) for start in (0.0, 12 * 60.0) for at in batch(day, requests=20, jitter=start)
    ]
    history = history_of([MONDAY - HOUR, *nights], maximum=600)
    first = history.next_wake(MONDAY + 3 * DAY + 12 * HOUR, COLD)
    assert first is not None
    second = history.next_wake(first.wake_at, COLD, after=first.window[1])
    assert second is not None and first.window[0] < second.window[0] < first.window[1]
    assert second.window[0] - first.window[0] == pytest.approx(12 * 60, abs=1)


def test_a_return_another_replica_routed_is_learnt_here_too() -> None:
    """The leader sees a return through another replica's activity after a long pause (it did not
    route the request) and learns it; activity after a short pause is not a return."""
    endpoint = asleep_endpoint()
    endpoint.adaptive = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    endpoint.learn_from([(MONDAY - HOUR, 1)])
    endpoint.last_activity = MONDAY - HOUR
    for day in range(4):
        endpoint.take_presence(0, MONDAY + day * DAY + 2 * HOUR)
        endpoint.take_presence(0, MONDAY + day * DAY + 2 * HOUR + 300)  # the same burst: no return
    returns = endpoint.adaptive.returns
    assert returns._times == [MONDAY - HOUR, *(MONDAY + day * DAY + 2 * HOUR for day in range(4))]
