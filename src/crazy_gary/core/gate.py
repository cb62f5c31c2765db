"""An endpoint's concurrency limit: at most `max_concurrency` requests on it at once, the others
queued in order of arrival (README, "Gateway").

A request takes a slot when routing chooses the endpoint, and its lease gives the slot back when it
ends. A slot given back goes straight to the first request queued, never back to the pool while
someone waits, so a request arriving later cannot overtake the queue. Without a limit, nothing is
counted and no slot is handed out.

    if gate.admits():
        slot = gate.take()                       # None without a limit
    else:
        with gate.place(order) as place:         # queued, by order of arrival
            if await place.wait(timeout):
                slot = place.take()              # handed over by the request that ended
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable, Iterator

from crazy_gary.clock import Clock

__all__ = ["ConcurrencyGate", "Place", "Slot"]

_SMOOTHING = 0.2  # weight of the latest request in the average time a slot is held


class Slot:
    """One request's room on the endpoint; `release()` gives it back (once)."""

    __slots__ = ("_gate", "_held", "_since")

    def __init__(self, gate: ConcurrencyGate, since: float) -> None:
        self._gate, self._held, self._since = gate, True, since

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate._give_back(self._since)


class Place:
    """A request's place in the queue; it keeps its place across several `wait`s."""

    __slots__ = ("_future", "_gate", "_left", "_taken")

    def __init__(self, gate: ConcurrencyGate, future: asyncio.Future[None]) -> None:
        self._gate, self._future, self._taken, self._left = gate, future, False, False

    @property
    def granted(self) -> bool:
        """Whether a slot was handed to this place."""
        return self._future.done() and not self._future.cancelled()

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds of the gate's clock for a slot; True once one is handed over."""
        if self.granted or timeout <= 0:
            return self.granted
        timer = asyncio.ensure_future(self._gate.clock.sleep(timeout))
        try:
            await asyncio.wait((self._future, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        return self.granted

    def take(self) -> Slot:
        """The slot handed to this place, now the caller's to release."""
        assert self.granted and not self._taken
        self._taken = True
        return Slot(self._gate, self._gate.clock.monotonic())

    def _leave(self) -> None:
        if self._left:
            return
        self._left = True
        if self.granted:
            if not self._taken:  # handed over, but the request went elsewhere or was cancelled
                self._gate._give_back(None)
        elif not self._future.done():
            self._future.cancel()
            self._gate._left()


class ConcurrencyGate:
    """At most `limit` slots taken at once (no limit when None), the rest queued by `order`."""

    def __init__(self, limit: int | None, clock: Clock, on_change: Callable[[], None] | None = None) -> None:
        """`on_change` is told each time the slots taken or the queue change."""
        self.limit = limit
        self.clock = clock
        self.active = 0
        self.queued = 0
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._pushed = 0
        self._held_for: float | None = None  # the average seconds a slot is held, once measured
        self._on_change = on_change

    def admits(self) -> bool:
        """Whether a request may take a slot now: one is free and nobody is queued before it."""
        return self.limit is None or (self.active < self.limit and self.queued == 0)

    def take(self) -> Slot | None:
        """Take a free slot (see `admits`); None, and nothing counted, without a limit."""
        if self.limit is None:
            return None
        assert self.admits()
        self.active += 1
        self._changed()
        return Slot(self, self.clock.monotonic())

    @contextlib.contextmanager
    def place(self, order: int) -> Iterator[Place]:
        """Queue a request whose arrival was `order`-th; leaving the block gives up the place (or
        passes on a slot handed over and not taken)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pushed += 1
        heapq.heappush(self._queue, (order, self._pushed, future))
        self.queued += 1
        self._changed()
        place = Place(self, future)
        try:
            yield place
        finally:
            place._leave()

    def wait_estimate(self) -> float | None:
        """Seconds until the last request queued should have a slot, from the average time a slot
        is held; None before any request ended."""
        if self.limit is None or self._held_for is None:
            return None
        return self._held_for * (self.queued + 1) / self.limit

    # -- internals ----------------------------------------------------------------------------
    def _give_back(self, since: float | None) -> None:
        if since is not None:
            held = self.clock.monotonic() - since
            last = self._held_for
            self._held_for = held if last is None else last + _SMOOTHING * (held - last)
        while self._queue:
            _, _, future = heapq.heappop(self._queue)
            if not future.done():
                self.queued -= 1
                future.set_result(None)  # the slot passes on: `active` stays as it is
                self._changed()
                return
        self.active -= 1
        self._changed()

    def _left(self) -> None:
        self.queued -= 1
        if self.queued == 0:
            self._queue.clear()  # only places given up are left in it
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
