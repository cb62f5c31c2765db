"""Time as an object: everything that waits or timestamps is given a :class:`Clock`.

`SystemClock` is the real one. `ManualClock` stands still until a test moves it, so a
fifteen-minute auto-sleep is checked in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "wait_any", "wait_event"]


@runtime_checkable
class Clock(Protocol):
    """Wall time, monotonic time and an async sleep."""

    def now(self) -> float:
        """Unix time in seconds."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when :meth:`advance` is awaited.

    Sleepers wake in deadline order; between two deadlines the event loop is given a few turns
    so that woken tasks can run and schedule their next sleep before time moves on.

    With `until_idle`, for work that does no I/O (a replay), the turns go on until nothing is left
    to run instead: fewer turns when little happens, and never too few when a lot does.
    """

    def __init__(
        self, start: float = 1_700_000_000.0, *, settle_turns: int = 20, until_idle: bool = False
    ) -> None:
        self._now = start
        self._origin = start
        self._settle_turns = settle_turns
        self._until_idle = until_idle
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._origin

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def settle(self) -> None:
        """Give the event loop turns so that ready tasks run."""
        if self._until_idle:
            # asyncio's loop keeps what is ready to run in `_ready`; empty once only this task was
            # left to run. Loops without it (uvloop) get the fixed turns.
            ready = getattr(asyncio.get_running_loop(), "_ready", None)
            if ready is not None:
                await asyncio.sleep(0)
                while ready:
                    await asyncio.sleep(0)
                return
        for _ in range(self._settle_turns):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper due on the way, in order."""
        target = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline = self._sleepers[0][0]
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= deadline:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds of `clock` time pass; True when it was set."""
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if timeout <= 0:
        return False
    waiter = asyncio.ensure_future(event.wait())
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, timer):
            if not task.done():
                task.cancel()
        await asyncio.gather(waiter, timer, return_exceptions=True)
    return event.is_set()


async def wait_any(clock: Clock, events: list[asyncio.Event], timeout: float) -> bool:
    """Wait until one of `events` is set or `timeout` seconds of `clock` time pass; True when one was set."""
    if any(event.is_set() for event in events):
        return True
    if timeout <= 0:
        return False
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({*waiters, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*waiters, timer):
            if not task.done():
                task.cancel()
        await asyncio.gather(*waiters, timer, return_exceptions=True)
    return any(event.is_set() for event in events)
