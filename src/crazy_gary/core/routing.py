"""Which endpoint serves a request: serve, hold, or fall back, and why (README, "Gateway").

A running primary serves at once. A sleeping or starting one is woken (one wake per endpoint,
shared with the manager) and the request waits up to `fallback_wait` for it before the first
running fallback answers. When nothing in the chain runs, every wakeable endpoint of the chain is
woken and the request is held until one runs, up to the primary's wake timeout and at most
`max_pending` held requests per endpoint; past either, or when every endpoint it waits for has
failed, `NoCapacity` with a Retry-After estimate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from crazy_gary.clock import Clock
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


@dataclass(frozen=True)
class Decision:
    """Send the request to `key` at `url`; `reason` says why when it is not the primary; `held`, the
    seconds the request waited for an endpoint to start before this was decided."""

    key: str
    url: str
    reason: FallbackReason | None
    held: float = 0.0


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

    def stop_holding(self) -> None:
        """The server is stopping: every held request ends now (`NoCapacity`, a 503 with
        Retry-After, unless an endpoint of its chain serves at once), and none is held from now on."""
        self._held.close()

    def reason(self, key: str) -> FallbackReason | None:
        """Why `key` cannot serve right now, or None when it can."""
        endpoint = self._manager.endpoint(key)
        status = endpoint.status()
        if status is EndpointStatus.RUNNING and endpoint.inference_url:
            return None if endpoint.breaker.allows() else FallbackReason.CIRCUIT_OPEN
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
        chain = [key for key in self._manager.chain(primary) if key not in exclude]
        first = self._take(chain[:1], primary, why)
        if first is not None:
            return first
        started = self._clock.monotonic()  # off the fast path: only a request not served at once
        decided = await self._route_cold(chain, primary, why)
        return dataclasses.replace(decided, held=self._clock.monotonic() - started)

    async def _route_cold(self, chain: list[str], primary: str, why: FallbackReason | None) -> Decision:
        """The primary cannot serve now: wait for it a while, else the chain's first that can."""
        arrival = why or self.reason(primary)
        if primary in chain and self._wake_for_request(primary):
            pending = self._manager.endpoint(primary).pending
            if self._fallback_wait > 0 and pending < self._max_pending:
                with self._manager.endpoint(primary).holding():
                    decided = await self._hold([primary], primary, arrival, self._fallback_wait)
                if decided is not None:
                    return decided
        served = self._take(chain, primary, arrival)
        if served is not None:
            return served
        return await self._hold_for_any(chain, primary, arrival)

    def _take(self, chain: list[str], primary: str, why: FallbackReason | None) -> Decision | None:
        """The first endpoint of the chain that can serve now. Its breaker is not claimed here: the
        caller's lease claims it, with no await between (`route` returns as soon as it chose)."""
        for key in chain:
            endpoint = self._manager.endpoint(key)
            if self.reason(key) is None:
                url = endpoint.inference_url
                assert url is not None
                reason = (
                    None if key == primary else (why or self.reason(primary) or FallbackReason.PRIMARY_ERROR)
                )
                return Decision(key, url, reason)
        return None

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
    ) -> Decision | None:
        deadline = self._clock.monotonic() + timeout
        while True:
            decided = self._take(keys, primary, why)
            if decided is not None:
                return decided
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or self._all_failed(keys) or self._held.closed:
                return None
            await self._held.wait(keys, remaining)

    def _settled(self, keys: Sequence[str]) -> bool:
        """A hold ends when one of `keys` can serve, or when all are in error: nothing will change
        then until an operator acts, and waiting out the wake timeout would only keep the caller."""
        return any(self.reason(key) is None for key in keys) or self._all_failed(keys)

    def _all_failed(self, keys: Sequence[str]) -> bool:
        """Every one of `keys` failed at HF itself (a wake whose call failed may yet run)."""
        return all(self._manager.endpoint(key).hf_state in _HF_FAILED for key in keys)

    async def _hold_for_any(self, chain: list[str], primary: str, why: FallbackReason | None) -> Decision:
        wakeable = [key for key in chain if self._wake_for_request(key)]
        if not wakeable or self._manager.endpoint(primary).pending >= self._max_pending:
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
