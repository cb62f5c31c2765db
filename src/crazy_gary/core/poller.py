"""One shared status poller per namespace: quick while an endpoint starts or stops, slow otherwise.

Listing a namespace reads all its endpoints in one call, so fifty steady endpoints cost one call per
slow interval, however many clients read the status (SPEC §3).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.ports import ManagementAPI, UpstreamEndpoint
from crazy_gary.core.status import EndpointStatus
from crazy_gary.errors import ManagementError

__all__ = ["StatusPoller"]

_MOVING = frozenset({EndpointStatus.STARTING, EndpointStatus.STOPPING})


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
        self._tickets = itertools.count(1)

    def start(self) -> None:
        for namespace, endpoints in self._namespaces.items():
            self._tasks.append(asyncio.create_task(self._poll_namespace(namespace, endpoints)))
        for endpoint in self._unmanaged:
            self._tasks.append(asyncio.create_task(self._probe(endpoint)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def hurry(self, endpoint: Endpoint) -> None:
        """Poll this endpoint's namespace now and quickly from now on, until it is steady again."""
        if endpoint.spec.namespace in self._kicks:
            self._kicks[endpoint.spec.namespace].set()

    def ticket(self) -> int:
        """Take a number before asking the management API; answers are applied in ticket order."""
        return next(self._tickets)

    def apply(
        self, endpoint: Endpoint, upstream: UpstreamEndpoint | None, ticket: int, error: str | None = None
    ) -> None:
        """Record what the management API said (None: it could not say) and tell the waiters.

        An answer to a question asked before the last applied one is stale (a slow list overtaken by
        a pause, say) and is dropped.
        """
        if ticket < endpoint.ticket:
            return
        endpoint.ticket = ticket
        before = endpoint.status()
        endpoint.seen = True
        endpoint.reachable = upstream is not None
        if upstream is not None:
            endpoint.upstream = upstream
        endpoint.poll_error = error
        self._on_change(endpoint, before)
        endpoint.notify()

    async def _poll_namespace(self, namespace: str, endpoints: list[Endpoint]) -> None:
        kick = self._kicks[namespace]
        while True:
            await self._refresh(namespace, endpoints)
            moving = any(
                endpoint.operation is not None or not endpoint.reachable or endpoint.status() in _MOVING
                for endpoint in endpoints
            )
            kick.clear()
            await wait_event(self._clock, kick, self.fast_interval if moving else self.interval)

    async def _refresh(self, namespace: str, endpoints: list[Endpoint]) -> None:
        ticket = self.ticket()
        try:
            listed = {item.name: item for item in await self._management.list(namespace)}
        except ManagementError as exc:
            for endpoint in endpoints:
                self.apply(endpoint, None, ticket, exc.message)
            return
        for endpoint in endpoints:
            upstream = listed.get(endpoint.spec.name or "")
            missing = None if upstream else f"Hugging Face has no endpoint {namespace}/{endpoint.spec.name}."
            self.apply(endpoint, upstream, ticket, missing)

    async def _probe(self, endpoint: Endpoint) -> None:
        url = endpoint.spec.inference_url or endpoint.spec.url
        while True:
            healthy = await self._management.probe(url)
            before = endpoint.status()
            endpoint.seen = True
            endpoint.reachable = healthy
            endpoint.poll_error = None if healthy else f"{url} does not answer its health route."
            self._on_change(endpoint, before)
            endpoint.notify()
            await self._clock.sleep(self.interval if healthy else self.fast_interval)
