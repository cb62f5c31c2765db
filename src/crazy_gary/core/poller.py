"""One shared status poller per namespace: quick while an endpoint starts or stops, slow otherwise.

Listing a namespace reads all its endpoints in one call, so fifty steady endpoints cost one call per
slow interval, however many clients read the status.

Among replicas the same holds for the whole deployment: only the leader lists a namespace while it
is steady, and every reading is shared (`crazy_gary.core.replicas`), so the others `adopt` it. A
replica still reads Hugging Face itself while its own operation runs there or when asked to hurry,
since those moments want answers within a second, and whenever the shared readings go stale (a
leader that died, say) until a new leader reads for all.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.ports import ManagementAPI, Reading, UpstreamEndpoint
from crazy_gary.core.status import EndpointStatus
from crazy_gary.core.supervisor import Supervisor, stop
from crazy_gary.errors import ManagementError

__all__ = ["StatusPoller"]

_MOVING = frozenset({EndpointStatus.STARTING, EndpointStatus.STOPPING})
# A follower reads for itself when no reading, here or shared, is younger than two slow intervals and
# a grace of a few seconds (the leader's lease: the time a new leader may take to read for all)
_STALE_INTERVALS, _STALE_GRACE = 2.0, 5.0
# Seconds between two asks of a loading endpoint's health route: held requests wait at most this
# long past the moment the model is ready
_HEALTH_RECHECK = 0.5


class StatusPoller:
    """Keeps every endpoint's upstream state fresh; the only reader of the management API's status."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        management: ManagementAPI,
        clock: Clock,
        *,
        interval: float,
        fast_interval: float,
        on_change: Callable[[Endpoint, EndpointStatus], None],
    ) -> None:
        self._management = management
        self._clock = clock
        self.interval = interval
        self.fast_interval = fast_interval
        self._on_change = on_change
        self._namespaces: dict[str, list[Endpoint]] = defaultdict(list)
        self._unmanaged: list[Endpoint] = []
        for endpoint in endpoints:
            if endpoint.spec.namespace is None:
                self._unmanaged.append(endpoint)
            else:
                self._namespaces[endpoint.spec.namespace].append(endpoint)
        self._kicks: dict[str, asyncio.Event] = {namespace: asyncio.Event() for namespace in self._namespaces}
        self._tasks: list[asyncio.Task[None]] = []
        self._health_checks: dict[str, asyncio.Task[None]] = {}  # by endpoint key, while one loads
        self._supervisor = Supervisor(clock)  # replaced by the manager's at start
        self._tickets = itertools.count(1)
        self._unshared: dict[str, Reading] = {}  # this replica's newest readings, not yet shared
        self._leading = True  # among replicas, the leader reads HF for everyone while nothing moves

    def start(self, supervisor: Supervisor) -> None:
        """One supervised task per namespace (`poller:<namespace>`) and per unmanaged endpoint
        (`probe:<key>`): a reading that fails unexpectedly is logged and counted, then taken again."""
        self._supervisor = supervisor
        for namespace, endpoints in self._namespaces.items():
            poll = functools.partial(self._poll_namespace, namespace, endpoints)
            self._tasks.append(supervisor.loop(f"poller:{namespace}", poll))
        for endpoint in self._unmanaged:
            probe = functools.partial(self._probe, endpoint)
            self._tasks.append(supervisor.loop(f"probe:{endpoint.key}", probe))

    async def close(self) -> None:
        await stop(self._tasks)
        self._tasks.clear()
        await stop(list(self._health_checks.values()))

    @property
    def leading(self) -> bool:
        return self._leading

    @leading.setter
    def leading(self, leading: bool) -> None:
        """A new leader reads every namespace at once: the readings it took over may be a while old."""
        if leading and not self._leading:
            for kick in self._kicks.values():
                kick.set()
        self._leading = leading

    def hurry(self, endpoint: Endpoint) -> None:
        """Poll this endpoint's namespace now and quickly from now on, until it is steady again."""
        if endpoint.spec.namespace in self._kicks:
            self._kicks[endpoint.spec.namespace].set()

    def ticket(self) -> int:
        """Take a number before asking the management API (and one as each answer is applied): an
        answer is applied only to a question asked after the last applied answer came."""
        return next(self._tickets)

    def apply(
        self,
        endpoint: Endpoint,
        upstream: UpstreamEndpoint | None,
        ticket: int,
        error: str | None = None,
        *,
        asked_at: float | None = None,
    ) -> None:
        """Record what the management API said (None: it could not say) and tell the waiters.

        An answer to a question asked before the last applied answer came may be older than it (a
        slow list overtaken by a pause, or one HF read just before the pause took effect) and is
        dropped. `asked_at` is the wall time of the question (now by default).
        """
        before = endpoint.status()
        observed_at = self._clock.now() if asked_at is None else asked_at
        answered = self.ticket()
        if not endpoint.apply_reading(
            upstream, error, ticket=ticket, observed_at=observed_at, answered=answered
        ):
            return
        self._on_change(endpoint, before)
        endpoint.notify()
        if endpoint.hf_running and not endpoint.healthy:
            self._check_health(endpoint)

    def _check_health(self, endpoint: Endpoint) -> None:
        """Ask the health route of an endpoint HF reports running until it answers 200 (one asker
        per endpoint): until then the model is loading and requests are held, not sent."""
        if endpoint.key not in self._health_checks:
            task = self._supervisor.once("health-check", functools.partial(self._await_health, endpoint))
            self._health_checks[endpoint.key] = task
            task.add_done_callback(lambda _: self._health_checks.pop(endpoint.key, None))

    async def _await_health(self, endpoint: Endpoint) -> None:
        # Never while it is being put to sleep: a health request may be what starts it again.
        while endpoint.hf_running and not endpoint.healthy and not endpoint.going_to_sleep:
            url = endpoint.inference_url
            if url is not None and await self._management.probe(url, endpoint.health_route):
                before = endpoint.status()
                if endpoint.mark_healthy():
                    self._on_change(endpoint, before)
                    endpoint.notify()
                return
            await self._clock.sleep(min(_HEALTH_RECHECK, self.fast_interval))

    def take_readings(self) -> list[Reading]:
        """This replica's newest reading of each namespace since the last call, to share."""
        readings, self._unshared = list(self._unshared.values()), {}
        return readings

    def adopt(self, reading: Reading) -> None:
        """Apply another replica's reading of a namespace, to each endpoint it is newer for."""
        endpoints = self._namespaces.get(reading.namespace, [])
        newer = [e for e in endpoints if e.observed_at is None or e.observed_at < reading.asked_at]
        if newer:
            self._record(reading.namespace, newer, reading, self.ticket())

    async def _poll_namespace(self, namespace: str, endpoints: list[Endpoint]) -> None:
        kick = self._kicks[namespace]
        hurried = True
        while True:
            if hurried or self._own_reading_due(endpoints):
                kick.clear()  # before the reading: a hurry while it is under way asks for another one
                await self._refresh(namespace, endpoints)
            moving = any(
                endpoint.operation is not None or not endpoint.reachable or endpoint.status() in _MOVING
                for endpoint in endpoints
            )
            hurried = await wait_event(self._clock, kick, self.fast_interval if moving else self.interval)

    def _own_reading_due(self, endpoints: list[Endpoint]) -> bool:
        """The leader reads every time; a follower while its own operation runs, or when the shared
        readings are stale."""
        if self.leading or any(endpoint.operation is not None for endpoint in endpoints):
            return True
        oldest = min((e.observed_at for e in endpoints if e.observed_at is not None), default=None)
        return oldest is None or self._clock.now() - oldest >= _STALE_INTERVALS * self.interval + _STALE_GRACE

    async def _refresh(self, namespace: str, endpoints: list[Endpoint]) -> None:
        ticket, asked_at = self.ticket(), self._clock.now()
        try:
            listed = tuple(await self._management.list(namespace))
        except ManagementError as exc:
            reading = Reading(namespace, asked_at, error=exc.message)
        else:
            reading = Reading(namespace, asked_at, listed)
        self._unshared[namespace] = reading
        self._record(namespace, endpoints, reading, ticket)

    def _record(self, namespace: str, endpoints: list[Endpoint], reading: Reading, ticket: int) -> None:
        listed = {item.name: item for item in reading.endpoints}
        for endpoint in endpoints:
            if reading.error is not None:
                self.apply(endpoint, None, ticket, reading.error, asked_at=reading.asked_at)
                continue
            upstream = listed.get(endpoint.spec.name or "")
            missing = None if upstream else f"Hugging Face has no endpoint {namespace}/{endpoint.spec.name}."
            self.apply(endpoint, upstream, ticket, missing, asked_at=reading.asked_at)

    async def _probe(self, endpoint: Endpoint) -> None:
        url = endpoint.spec.inference_url or endpoint.spec.url
        while True:
            healthy = await self._management.probe(url)
            before = endpoint.status()
            endpoint.apply_probe(healthy, None if healthy else f"{url} does not answer its health route.")
            self._on_change(endpoint, before)
            endpoint.notify()
            await self._clock.sleep(self.interval if healthy else self.fast_interval)
