"""Requests held until an endpoint can serve them, each costing one future rather than a loop.

Every held request used to wake at every reading of its endpoints and every second, to look again:
ten thousand held requests made ten thousand wake-ups a second. Here the requests held on the same
endpoints share one watcher, which looks after each reading (and each second, for circuits that
turn half-open with time) and releases them all at once, in order of arrival, when one of the
endpoints can serve. The watcher also ends the requests whose deadline passed: a held request is
one future and its deadline, with no timer of its own (a timer task each made a held request cost
kilobytes more, and ten thousand of them kept the collector busy).

asyncio has no primitive for "wake these waiters, in order, when a condition over several events
holds": `asyncio.Condition` would wake every waiter at every reading again, so this is our own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence

from crazy_gary.clock import Clock, wait_any

__all__ = ["HeldRequests"]

logger = logging.getLogger("crazy_gary.router")

_RECHECK = 1.0  # seconds: open circuits turn half-open with time, not with an event


class _Group:
    """The requests held on one tuple of endpoints, in order of arrival, and their watcher."""

    def __init__(self) -> None:
        # each waiter's deadline on the clock; a dict: ordered by arrival, O(1) removal
        self.waiters: dict[asyncio.Future[bool], float] = {}
        self.watcher: asyncio.Task[None] | None = None
        self.looks_again = math.inf  # when the watcher looks next, by itself
        self.nearer = asyncio.Event()  # set for a waiter whose deadline comes before that


class HeldRequests:
    """Holds requests on tuples of endpoint keys until `can_serve(keys)` says one of them can serve.

    `updated(key)` is the endpoint's event of the moment (set at its next change).
    """

    def __init__(
        self,
        clock: Clock,
        can_serve: Callable[[Sequence[str]], bool],
        updated: Callable[[str], asyncio.Event],
    ) -> None:
        self._clock = clock
        self._can_serve = can_serve
        self._updated = updated
        self._groups: dict[tuple[str, ...], _Group] = {}
        self.closed = False

    def close(self) -> None:
        """Release every held request and hold no more: `wait` answers False from now on."""
        self.closed = True
        for group in list(self._groups.values()):
            self._release(group)

    def __len__(self) -> int:
        return sum(len(group.waiters) for group in self._groups.values())

    async def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Wait until one of `keys` may serve (True; the caller looks which) or `timeout` seconds
        pass (False). Released requests wake in the order they began to wait. Once closed, False
        at once."""
        if timeout <= 0 or self.closed:
            return False
        group_key = tuple(keys)
        group = self._groups.setdefault(group_key, _Group())
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        deadline = self._clock.monotonic() + timeout
        group.waiters[future] = deadline
        if deadline < group.looks_again:
            group.nearer.set()
        if group.watcher is None:
            group.watcher = asyncio.create_task(self._watch(group_key, group), name=f"held:{group_key}")
        try:
            return await future
        finally:
            group.waiters.pop(future, None)
            if not future.done():
                future.cancel()

    @staticmethod
    def _release(group: _Group, served: bool = True) -> None:
        released, group.waiters = list(group.waiters), {}
        for future in released:
            if not future.done():
                future.set_result(served)

    @staticmethod
    def _expire(group: _Group, now: float) -> float | None:
        """End the waiters whose deadline is `now` or past (False); the nearest deadline left."""
        nearest = None
        for future, deadline in list(group.waiters.items()):
            if deadline <= now:
                del group.waiters[future]
                if not future.done():
                    future.set_result(False)
            elif nearest is None or deadline < nearest:
                nearest = deadline
        return nearest

    async def _watch(self, group_key: tuple[str, ...], group: _Group) -> None:
        """Look after each change of the group's endpoints; release every waiter once one can serve."""
        try:
            while group.waiters:
                events = [self._updated(key) for key in group_key]
                if self._can_serve(group_key):
                    self._release(group)
                    break
                now = self._clock.monotonic()
                nearest = self._expire(group, now)
                if nearest is not None:
                    pause = min(_RECHECK, nearest - now)
                    group.looks_again, group.nearer = now + pause, asyncio.Event()
                    await wait_any(self._clock, [*events, group.nearer], pause)
        except Exception:  # deliberate: any failure is logged, and the held requests look themselves
            logger.exception("the watcher of the requests held on %s failed", ", ".join(group_key))
            self._release(group)
        finally:  # released, or cancelled at shutdown: nobody is left to end the waits but here
            self._release(group, served=False)
            group.watcher = None
            if not group.waiters and self._groups.get(group_key) is group:
                del self._groups[group_key]
