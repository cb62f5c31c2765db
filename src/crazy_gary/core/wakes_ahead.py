"""Wakes ahead of a predicted return (`auto_sleep = "adaptive"`, `crazy_gary.core.returns`): the
endpoint is woken a cold start and a minute before the window in which its history says requests
return (actor `adaptive`), and auto-sleep leaves it up until the window ends (`Endpoint.awake_until`).

Only an endpoint that auto-sleep (or HF's own idle timer) put to sleep is woken so: one an operator
put to sleep stays asleep until a request or an operator wakes it. Among replicas the leader wakes,
as it puts to sleep. Each window is acted on once; the predictions are looked at again at least
hourly, since each return seen may add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.status import EndpointStatus

__all__ = ["ACTOR", "WakesAhead"]

ACTOR = "adaptive"
_PASS = 3600.0  # seconds between looks at the predictions, at most
_LATE = 60.0  # seconds a wake may come late (a clock's sleep may end after its deadline)
_SLEEPERS_WOKEN = frozenset({None, "auto-sleep", ACTOR})  # who put it to sleep, for a wake ahead
_UP_OR_WAKING = frozenset({EndpointStatus.RUNNING, EndpointStatus.STARTING})


class WakesAhead:
    """One pass at each planned wake: wake what a predicted return wants up."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        clock: Clock,
        wake: Callable[[str, str], object],
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._endpoints = [e for e in endpoints if e.spec.managed and e.adaptive is not None]
        self._clock = clock
        self._wake = wake  # (key, actor)
        self._leading = leading
        self._handled: dict[str, float] = {}  # key -> end of the last window acted on

    @property
    def needed(self) -> bool:
        return bool(self._endpoints)

    async def run_pass(self) -> None:
        """Act on the wakes that are due; then wait for the next one (or an hour)."""
        now = self._clock.now()
        next_wake = now + _PASS
        for endpoint in self._endpoints:
            assert endpoint.adaptive is not None
            returns = endpoint.adaptive.returns
            cold_start = endpoint.expected_cold_start()
            planned = returns.next_wake(now - _LATE, cold_start, self._handled.get(endpoint.key))
            while planned is not None and planned.wake_at <= now:
                self._act(endpoint, planned.window[1])
                planned = returns.next_wake(now - _LATE, cold_start, self._handled[endpoint.key])
            if planned is not None:
                next_wake = min(next_wake, planned.wake_at)
        await self._clock.sleep(next_wake - now)

    def _act(self, endpoint: Endpoint, until: float) -> None:
        """Keep the endpoint up until `until`, woken now if it sleeps and may be woken."""
        self._handled[endpoint.key] = until
        status = endpoint.status()
        if status in _UP_OR_WAKING or endpoint.operation == "wake":
            endpoint.awake_until = until
        elif (
            status is EndpointStatus.SLEEPING
            and endpoint.slept_by in _SLEEPERS_WOKEN
            and endpoint.reachable
            and endpoint.operation is None
            and self._leading()
        ):
            endpoint.awake_until = until
            self._wake(endpoint.key, ACTOR)
