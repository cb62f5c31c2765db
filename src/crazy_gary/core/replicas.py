"""Keeping a replica in step with the others: shared activity, requests in flight and the leader.

Every `interval` seconds of the clock a replica renews (or tries to take) the leader's lease, tells
the others its last activity and requests in flight per endpoint, and takes in theirs: an endpoint
used through another replica counts as used here too, and one busy elsewhere is not put to sleep.
Only the leader runs auto-sleep, so an idle endpoint is put to sleep once, whichever replica saw its
last request; when the leader dies its lease lapses and another replica takes over.

Coalescing into one exchange a second keeps Redis off every request's path: activity reaches the
other replicas within `interval`, which is small beside an auto-sleep of minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from crazy_gary.clock import Clock
from crazy_gary.core.autosleep import AutoSleeper
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.ports import Coordination, Presence

__all__ = ["SYNC_INTERVAL", "ReplicaSync"]

logger = logging.getLogger("crazy_gary.replicas")

SYNC_INTERVAL = 1.0


class ReplicaSync:
    """The loop that keeps this replica's endpoints and auto-sleep in step with the others."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        coordination: Coordination,
        autosleep: AutoSleeper,
        clock: Clock,
        *,
        interval: float = SYNC_INTERVAL,
    ) -> None:
        self._endpoints = {endpoint.key: endpoint for endpoint in endpoints if endpoint.spec.managed}
        self._coordination = coordination
        self._autosleep = autosleep
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="crazy-gary-replica-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> None:
        """One exchange with the others: the lease, then activity and requests in flight."""
        leading = await self._coordination.lead()
        if leading != self._autosleep.leading:
            logger.info("this replica %s auto-sleep", "now runs" if leading else "no longer runs")
            self._autosleep.leading = leading
            self._autosleep.kick()
        ours = {key: Presence(e.last_activity, e.in_flight) for key, e in self._endpoints.items()}
        together = await self._coordination.share(ours)
        changed = False
        for key, endpoint in self._endpoints.items():
            shared = together.get(key) if together is not None else None
            elsewhere = 0 if shared is None else max(0, shared.in_flight - ours[key].in_flight)
            changed = changed or elsewhere != endpoint.in_flight_elsewhere
            endpoint.in_flight_elsewhere = elsewhere
            newest = None if shared is None else shared.last_activity
            if newest is not None and (endpoint.last_activity is None or newest > endpoint.last_activity):
                endpoint.last_activity = newest
                changed = True
        if changed:
            self._autosleep.kick()

    async def _run(self) -> None:
        while True:
            await self.tick()
            await self._clock.sleep(self._interval)
