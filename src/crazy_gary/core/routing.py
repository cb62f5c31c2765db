"""Which endpoint serves a request: serve, hold, or fall back, and why (README, "Gateway").

A running primary serves at once. A sleeping or starting one is woken (one wake per endpoint,
shared with the manager) and the request waits up to `fallback_wait` for it before the first
running fallback answers. When nothing in the chain runs, every wakeable endpoint of the chain is
woken and the request is held until one runs, up to the primary's wake timeout and at most
`max_pending` held requests per endpoint; past either, or when every endpoint it waits for has
failed, `NoCapacity` with a Retry-After estimate.

An endpoint with `max_concurrency` that runs but has no free slot queues the request in order of
arrival (`crazy_gary.core.gate`), under the same bounds: `max_pending` waiting requests, the
fallback after `fallback_wait` (reason `primary_busy`) when one runs with room, NoCapacity at the
primary's wake timeout. Held requests released together when an endpoint becomes ready take its
free slots in their order and queue for the rest, so it never gets more than it may take.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from crazy_gary.clock import Clock
from crazy_gary.core.gate import Slot
from crazy_gary.core.holds import HeldRequests
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.status import EndpointStatus, HfState
from crazy_gary.errors import NoCapacity

__all__ = ["Decision", "FallbackReason", "Router"]

_WAKEABLE = frozenset({EndpointStatus.SLEEPING, EndpointStatus.STARTING, EndpointStatus.STOPPING})
_RETRY_WHILE_STOPPING = 5  # seconds: a server that stops is usually started again (or replaced) soon
_HF_FAILED = frozenset({HfState.FAILED.value, HfState.UPDATE_FAILED.value})


class FallbackReason(StrEnum):
    PRIMARY_SLEEPING = "primary_sleeping"
    PRIMARY_STARTING = "primary_starting"
    PRIMARY_ERROR = "primary_error"
    CIRCUIT_OPEN = "circuit_open"
    PRIMARY_TIMEOUT = "primary_timeout"
    PRIMARY_BUSY = "primary_busy"  # at its max_concurrency, the wait for a free slot too long


@dataclass(frozen=True)
class Decision:
    """Send the request to `key` at `url`; `reason` says why when it is not the primary. `slot` is
    the request's room under the endpoint's concurrency limit (None without one), for its lease;
    `held`, the seconds the request waited (for a start or a slot) before this was decided."""

    key: str
    url: str
    reason: FallbackReason | None
    slot: Slot | None = None
    held: float = 0.0


@dataclass(frozen=True)
class _Busy:
    """A hold ended on an endpoint that runs but has no free slot: the request queues there."""

    key: str


class Router:
    """Chooses an endpoint for each request; the gateway and HarmonyClient share one."""

    def __init__(
        self,
        manager: HuggingFaceEndpointManager,
        clock: Clock,
        *,
        fallback_wait: float = 5.0,
        max_pending: int = 256,
    ) -> None:
        self._manager = manager
        self._clock = clock
        self._fallback_wait = fallback_wait
        self._max_pending = max_pending
        self._held = HeldRequests(clock, self._settled, lambda key: manager.endpoint(key).updated())
        self._arrivals = itertools.count()  # the order requests arrived in, for the queues

    def stop_holding(self) -> None:
        """The server is stopping: every held request ends now (`NoCapacity`, a 503 with
        Retry-After, unless an endpoint of its chain serves at once), and none is held from now on."""
        self._held.close()

    def reason(self, key: str) -> FallbackReason | None:
        """Why `key` cannot serve right now, or None when it can."""
        endpoint = self._manager.endpoint(key)
        status = endpoint.status()
        if (status is EndpointStatus.RUNNING or endpoint.ran_when_last_read) and endpoint.inference_url:
            if not endpoint.breaker.allows():
                return FallbackReason.CIRCUIT_OPEN
            return None if endpoint.gate.admits() else FallbackReason.PRIMARY_BUSY
        if status in (EndpointStatus.SLEEPING, EndpointStatus.STOPPING):
            return FallbackReason.PRIMARY_SLEEPING
        if status is EndpointStatus.STARTING:
            return FallbackReason.PRIMARY_STARTING
        return FallbackReason.PRIMARY_ERROR

    async def route(
        self, primary: str, *, exclude: frozenset[str] = frozenset(), why: FallbackReason | None = None
    ) -> Decision:
        """Pick the endpoint for a request to `primary`; may wake endpoints and wait (see module doc).

        `exclude` holds endpoints that already failed this request; `why` is then the reason to report.
        """
        if not exclude:  # a request's first routing, not its retry elsewhere
            self._manager.endpoint(primary).request_arrived(self._clock.now())
        arrival = _Arrival(next(self._arrivals), self._clock.monotonic())
        return await self._route(primary, exclude, why, arrival)

    async def _route(
        self, primary: str, exclude: frozenset[str], why: FallbackReason | None, arrival: _Arrival
    ) -> Decision:
        chain = [key for key in self._manager.chain(primary) if key not in exclude]
        first = self._take(chain[:1], primary, why)
        if first is not None:
            return first
        started = self._clock.monotonic()  # off the fast path: only a request not served at once
        decided = await self._route_cold(chain, primary, why, arrival)
        return dataclasses.replace(decided, held=self._clock.monotonic() - started)

    async def _route_cold(
        self, chain: list[str], primary: str, why: FallbackReason | None, arrival: _Arrival
    ) -> Decision:
        """The primary cannot serve now: wait for it (a start or a slot) a while, else the chain's
        first that can, else hold for any of them."""
        why = why or self.reason(primary)
        if primary in chain and self.reason(primary) is FallbackReason.PRIMARY_BUSY:
            return await self._queue(primary, chain, primary, why, arrival)
        woken = primary in chain and self._wake_for_request(primary)
        if woken and self._fallback_wait > 0 and self._room(primary):
            with self._manager.endpoint(primary).holding():
                held = await self._hold([primary], primary, why, self._fallback_wait)
            if isinstance(held, _Busy):
                return await self._queue(held.key, chain, primary, why, arrival)
            if held is not None:
                return held
        served = self._take(chain, primary, why)
        if served is not None:
            return served
        held = await self._hold_for_any(chain, primary, why)
        if isinstance(held, _Busy):
            return await self._queue(held.key, chain, primary, why, arrival)
        return held

    def _take(self, chain: list[str], primary: str, why: FallbackReason | None) -> Decision | None:
        """The first endpoint of the chain that can serve now, its concurrency slot taken. Its
        breaker is not claimed here: the caller's lease claims it, with no await between (`route`
        returns as soon as it chose)."""
        for key in chain:
            if self.reason(key) is None:
                return self._decision(key, primary, why, self._manager.endpoint(key).gate.take())
        return None

    def _decision(self, key: str, primary: str, why: FallbackReason | None, slot: Slot | None) -> Decision:
        url = self._manager.endpoint(key).inference_url
        assert url is not None
        reason = None if key == primary else (why or self.reason(primary) or FallbackReason.PRIMARY_ERROR)
        return Decision(key, url, reason, slot)

    def _room(self, key: str) -> bool:
        """Whether one more request may wait on `key` (held for a cold start or queued for a slot)."""
        endpoint = self._manager.endpoint(key)
        return endpoint.pending + endpoint.gate.queued < self._max_pending

    async def _queue(
        self, key: str, chain: list[str], primary: str, why: FallbackReason | None, arrival: _Arrival
    ) -> Decision:
        """Wait in `key`'s queue for a free slot, in order of arrival: up to `fallback_wait` from the
        request's arrival, then a running fallback with room serves it; else it keeps its place up
        to the primary's wake timeout, then NoCapacity."""
        others = [other for other in chain if other != key]
        why = FallbackReason.PRIMARY_BUSY if key == primary else why
        if not self._room(key):
            return self._take(others, primary, why) or self._raise_busy(key)
        gate = self._manager.endpoint(key).gate
        with gate.place(arrival.order) as place:
            for deadline in (self._fallback_wait, self._manager.wake_timeout(primary)):
                if await place.wait(arrival.start + deadline - self._clock.monotonic()):
                    slot = place.take()
                    if self.reason(key) in (None, FallbackReason.PRIMARY_BUSY):
                        return self._decision(key, primary, why, slot)
                    slot.release()  # it stopped serving meanwhile: routed again, as in any state
                    excluded = frozenset(self._manager.chain(primary)) - frozenset(chain)
                    return await self._route(primary, excluded, why if key != primary else None, arrival)
                served = self._take(others, primary, why)
                if served is not None:
                    return served
        return self._raise_busy(key)

    def _raise_busy(self, key: str) -> NoReturn:
        estimate = self._manager.endpoint(key).gate.wait_estimate()
        raise NoCapacity(
            f"'{key}' is serving as many requests as it may at once (max_concurrency) and the wait "
            f"for a free slot is over.",
            retry_after=max(1, math.ceil(estimate or 1)),
        )

    def _wake_for_request(self, key: str) -> bool:
        """Wake a sleeping endpoint for a request; an endpoint in error is left to the operator."""
        status = self._manager.endpoint(key).status()
        if status not in _WAKEABLE or not self._manager.endpoint(key).spec.managed:
            return False
        if status is not EndpointStatus.STARTING:
            self._manager.wake(key, actor="gateway")
        return True

    async def _hold(
        self, keys: list[str], primary: str, why: FallbackReason | None, timeout: float
    ) -> Decision | _Busy | None:
        deadline = self._clock.monotonic() + timeout
        while True:
            decided = self._take(keys, primary, why)
            if decided is not None:
                return decided
            busy = next((key for key in keys if self.reason(key) is FallbackReason.PRIMARY_BUSY), None)
            if busy is not None:  # ready, and already full: the rest of the herd queues there
                return _Busy(busy)
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or self._all_failed(keys) or self._held.closed:
                return None
            await self._held.wait(keys, remaining)

    def _settled(self, keys: Sequence[str]) -> bool:
        """A hold ends when one of `keys` can serve (or runs, full), or when all are in error:
        nothing will change then until an operator acts, and waiting out the wake timeout would
        only keep the caller."""
        serving = (None, FallbackReason.PRIMARY_BUSY)
        return any(self.reason(key) in serving for key in keys) or self._all_failed(keys)

    def _all_failed(self, keys: Sequence[str]) -> bool:
        """Every one of `keys` failed at HF itself (a wake whose call failed may yet run)."""
        return all(self._manager.endpoint(key).hf_state in _HF_FAILED for key in keys)

    async def _hold_for_any(
        self, chain: list[str], primary: str, why: FallbackReason | None
    ) -> Decision | _Busy:
        wakeable = [key for key in chain if self._wake_for_request(key)]
        if not wakeable or not self._room(primary):
            raise self._no_capacity(chain, primary)
        timeout = self._manager.wake_timeout(primary)
        with self._manager.endpoint(primary).holding():
            decided = await self._hold(chain, primary, why, timeout)
        if decided is None:
            raise self._no_capacity(chain, primary)
        return decided

    def _no_capacity(self, chain: list[str], primary: str) -> NoCapacity:
        estimates = [eta for key in chain if (eta := self._manager.ready_in(key)) is not None]
        retry_after = math.ceil(min(estimates)) if estimates else 30
        if self._held.closed:
            return NoCapacity(
                f"No endpoint can serve '{primary}' now, and crazy-gary is stopping; try again shortly.",
                retry_after=min(retry_after, _RETRY_WHILE_STOPPING),
            )
        return NoCapacity(
            f"No endpoint can serve '{primary}' now; it is starting or unavailable.", retry_after=retry_after
        )


@dataclass(frozen=True)
class _Arrival:
    """When a request arrived: its rank among all requests, and the router clock's monotonic time."""

    order: int
    start: float
