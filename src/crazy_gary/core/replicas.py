"""Keeping a replica in step with the others: activity, requests in flight, states, circuits, the leader.

Every `interval` seconds of the clock a replica renews (or tries to take) the leader's lease, then
exchanges with the others:
- its last activity and requests in flight per endpoint: an endpoint used through another replica
  counts as used here too, and one busy elsewhere is neither put to sleep nor drained of them;
- its newest readings of Hugging Face's states, taking in the others' newer ones
  (`crazy_gary.core.poller`): while nothing moves only the leader reads HF, for everyone;
- when its circuit breakers last opened: a circuit opened through one replica opens on all.
Only the leader runs auto-sleep, so an idle endpoint is put to sleep once, whichever replica saw its
last request; when the leader dies its lease lapses and another replica takes over.

Coalescing into one exchange a second keeps Redis off every request's path: activity reaches the
other replicas within `interval`, which is small beside an auto-sleep of minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock
from crazy_gary.core.autosleep import AutoSleeper
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.poller import StatusPoller
from crazy_gary.core.ports import Coordination, Presence
from crazy_gary.core.supervisor import Supervisor, stop

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
        poller: StatusPoller,
        clock: Clock,
        *,
        announce: Callable[[Endpoint], None],
        interval: float = SYNC_INTERVAL,
    ) -> None:
        self._endpoints = {endpoint.key: endpoint for endpoint in endpoints if endpoint.spec.managed}
        self._coordination = coordination
        self._autosleep = autosleep
        self._poller = poller
        self._announce = announce  # tells the manager's observers of an endpoint's new state
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self, supervisor: Supervisor) -> None:
        if self._task is None:
            self._task = supervisor.loop("replica-sync", self._pass)

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop([task])

    async def tick(self) -> None:
        """One exchange with the others: the lease, presence, states and circuits."""
        leading = await self._coordination.lead()
        if leading != self._autosleep.leading:
            logger.info(
                "this replica %s auto-sleep and status polling", "now leads" if leading else "no longer leads"
            )
            self._autosleep.leading = leading
            self._autosleep.kick()
        self._poller.leading = leading
        await self._share_presence()
        await self._share_readings()
        await self._share_circuits()

    async def _share_presence(self) -> None:
        ours = {key: Presence(e.last_activity, e.in_flight) for key, e in self._endpoints.items()}
        together = await self._coordination.share(ours)
        changed = False
        for key, endpoint in self._endpoints.items():
            shared = together.get(key) if together is not None else None
            elsewhere = 0 if shared is None else max(0, shared.in_flight - ours[key].in_flight)
            moved, newer = endpoint.take_presence(elsewhere, None if shared is None else shared.last_activity)
            if moved:
                endpoint.notify()  # a sleep may be draining them
            changed = changed or moved or newer
        if changed:
            self._autosleep.kick()

    async def _share_readings(self) -> None:
        shared = await self._coordination.share_readings(self._poller.take_readings())
        for reading in shared or ():
            self._poller.adopt(reading)

    async def _share_circuits(self) -> None:
        opened = {
            key: e.breaker.opened_wall
            for key, e in self._endpoints.items()
            if e.breaker.opened_wall is not None
        }
        together = await self._coordination.share_circuits(opened)
        for key, at in (together or {}).items():
            endpoint = self._endpoints.get(key)
            if endpoint is not None and endpoint.breaker.open_since(at):
                logger.info("the circuit of %s opened through another replica", key)
                self._announce(endpoint)

    async def _pass(self) -> None:
        await self.tick()
        await self._clock.sleep(self._interval)
