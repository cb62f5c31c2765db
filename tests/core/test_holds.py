"""HeldRequests on the manual clock: one watcher per group of endpoints, release in order of arrival."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.holds import HeldRequests


class _Endpoints:
    """Endpoints that can serve or not, with an event per change, counting how often they are asked."""

    def __init__(self) -> None:
        self.serving: set[str] = set()
        self.asked = 0
        self._events: dict[str, asyncio.Event] = {}

    def can_serve(self, keys: Sequence[str]) -> bool:
        self.asked += 1
        return any(key in self.serving for key in keys)

    def updated(self, key: str) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def change(self, key: str, *, serving: bool) -> None:
        (self.serving.add if serving else self.serving.discard)(key)
        self._events.pop(key, asyncio.Event()).set()


async def test_thousands_held_are_released_at_once_in_order_of_arrival(clock: ManualClock) -> None:
    """2,000 requests held for 100 s of readings cost one look per reading (not one per request),
    and all wake, oldest first, at the reading that says the endpoint serves."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    released: list[int] = []

    async def request(number: int) -> None:
        assert await held.wait(["120b", "20b"], timeout=600)
        released.append(number)

    tasks = [asyncio.create_task(request(number)) for number in range(2000)]
    await clock.settle()
    assert len(held) == 2000
    for _ in range(100):
        endpoints.change("120b", serving=False)  # a reading that changes nothing for them
        await clock.advance(1)
    assert released == []
    assert endpoints.asked <= 250  # one watcher: a look per reading and per second
    endpoints.change("20b", serving=True)
    await clock.advance(0)
    await asyncio.gather(*tasks)
    assert released == list(range(2000))
    assert len(held) == 0


async def test_a_held_request_ends_at_its_deadline_and_leaves_the_others(clock: ManualClock) -> None:
    """A request whose deadline passes is let go (False); the rest stay held and are released later."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    short = asyncio.create_task(held.wait(["120b"], timeout=5))
    long = asyncio.create_task(held.wait(["120b"], timeout=60))
    await clock.advance(6)
    assert short.done() and short.result() is False
    assert not long.done() and len(held) == 1
    endpoints.change("120b", serving=True)
    await clock.advance(0)
    assert long.result() is True


async def test_an_open_circuit_that_turns_half_open_with_time_releases_them(clock: ManualClock) -> None:
    """No event comes when a circuit turns half-open: the watcher looks again each second by itself."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    waiting = asyncio.create_task(held.wait(["120b"], timeout=60))
    await clock.advance(3)
    endpoints.serving.add("120b")  # changed without an event
    await clock.advance(1)
    assert waiting.result() is True


async def test_a_cancelled_request_leaves_nothing_behind(clock: ManualClock) -> None:
    """A caller that goes away while held is removed, and the group's watcher ends with the last one."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    waiting = asyncio.create_task(held.wait(["120b"], timeout=60))
    await clock.settle()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await clock.advance(2)
    assert len(held) == 0
    assert clock.sleepers == 0


async def test_a_watcher_that_fails_says_so_and_lets_its_requests_look_themselves(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error in the watcher is logged and releases its requests (each then looks at
    the endpoints itself, and meets the error, rather than hanging until its deadline)."""
    endpoints = _Endpoints()

    def broken(keys: Sequence[str]) -> bool:
        raise KeyError(keys[0])

    held = HeldRequests(clock, broken, endpoints.updated)
    with caplog.at_level(logging.ERROR, logger="crazy_gary.router"):
        waiting = asyncio.create_task(held.wait(["120b"], timeout=60))
        await clock.settle()
    assert waiting.result() is True
    assert "the watcher of the requests held on 120b failed" in caplog.text


async def test_held_requests_have_no_timer_of_their_own(clock: ManualClock) -> None:
    """10,000 held requests sleep on one timer, their watcher's: each is a future and a deadline."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    tasks = [asyncio.create_task(held.wait(["120b"], timeout=30)) for _ in range(10_000)]
    await clock.settle()
    assert len(held) == 10_000
    assert clock.sleepers == 1
    await clock.advance(31)
    assert [task.result() for task in tasks] == [False] * 10_000
    assert len(held) == 0 and clock.sleepers == 0


async def test_deadlines_end_requests_in_their_own_order_not_their_arrival(clock: ManualClock) -> None:
    """A later request with a shorter deadline is let go first, at its deadline to the second."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    early_long = asyncio.create_task(held.wait(["120b"], timeout=20))
    await clock.advance(1)
    late_short = asyncio.create_task(held.wait(["120b"], timeout=3.5))
    await clock.advance(3.4)
    assert not late_short.done()
    await clock.advance(0.1)
    assert late_short.result() is False and not early_long.done()
    await clock.advance(15.4)
    assert not early_long.done()
    await clock.advance(0.1)
    assert early_long.result() is False


async def test_a_watcher_cancelled_lets_its_requests_go(clock: ManualClock) -> None:
    """The watcher cancelled (the loop shutting down) ends every wait it was keeping, not served."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    waiting = asyncio.create_task(held.wait(["120b"], timeout=60))
    await clock.settle()
    (watcher,) = [task for task in asyncio.all_tasks() if task.get_name().startswith("held:")]
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    assert await waiting is False


async def test_a_request_with_a_nearer_deadline_is_let_go_at_it_while_the_watcher_waits(
    clock: ManualClock,
) -> None:
    """The watcher waiting a second for its next look, a new request of 0.2 s ends at 0.2 s."""
    endpoints = _Endpoints()
    held = HeldRequests(clock, endpoints.can_serve, endpoints.updated)
    long = asyncio.create_task(held.wait(["120b"], timeout=60))
    await clock.advance(0.5)
    short = asyncio.create_task(held.wait(["120b"], timeout=0.2))
    await clock.advance(0.19)
    assert not short.done()
    await clock.advance(0.01)
    assert short.result() is False and not long.done()
