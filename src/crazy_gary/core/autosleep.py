"""The auto-sleep reaper: puts a running endpoint to sleep `auto_sleep` seconds after its last inference.

It sleeps on the injected clock until the earliest deadline, and is woken early whenever activity,
in-flight counts or states change. It never sleeps an endpoint with a request in flight, here or
through another replica; among replicas only the leader's reaper acts (`crazy_gary.core.replicas`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.supervisor import Supervisor, stop

__all__ = ["AutoSleeper"]


class AutoSleeper:
    """One reaper for all endpoints; `sleep` is called for each endpoint that is due."""

    def __init__(
        self, endpoints: Iterable[Endpoint], clock: Clock, *, sleep: Callable[[Endpoint], None]
    ) -> None:
        self._endpoints = list(endpoints)
        self._clock = clock
        self._sleep = sleep
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.leading = True  # among replicas, only the leader puts endpoints to sleep

    def start(self, supervisor: Supervisor) -> None:
        if self._task is None:
            self._task = supervisor.loop("auto-sleep", self._pass)

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop([task])

    def kick(self) -> None:
        """Something changed: look at the deadlines again."""
        self._kick.set()

    def reap(self) -> float | None:
        """Sleep every endpoint that is due and idle; return the next deadline, if any."""
        now = self._clock.now()
        next_due: float | None = None
        for endpoint in self._endpoints:
            due = endpoint.sleep_due()
            if due is None:
                continue
            if due <= now:
                if self.leading and endpoint.in_flight == 0 and endpoint.in_flight_elsewhere == 0:
                    self._sleep(endpoint)
                continue
            next_due = due if next_due is None else min(next_due, due)
        return next_due

    async def _pass(self) -> None:
        """Reap, then wait for the next deadline or a kick (the supervisor runs it again and again)."""
        self._kick.clear()
        next_due = self.reap()
        timeout = None if next_due is None else next_due - self._clock.now()
        await wait_event(self._clock, self._kick, timeout)
