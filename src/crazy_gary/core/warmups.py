"""Wake-ups by schedule: each endpoint with `warm` windows is woken at each window's start (actor
`schedule`); inside a window auto-sleep leaves it alone (`Endpoint.sleep_due`).

An endpoint is woken once per window: an operator who puts it to sleep inside one is obeyed until
the next. A window that begins while the endpoint cannot be woken (HF unreachable, say) is tried
again at the next reading of the endpoints (a minute later at most), until it can be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_any
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.status import EndpointStatus

__all__ = ["ScheduledWakes"]

_RETRY = 60.0  # seconds until a window that could not be acted on is tried again
_IDLE_PASS = 6 * 3600.0  # a pass at least this often, whatever the windows
_WOKEN_OR_WAKING = frozenset({EndpointStatus.RUNNING, EndpointStatus.STARTING})
ACTOR = "schedule"


class ScheduledWakes:
    """One pass at each window start: wake what a window that began wants awake."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        clock: Clock,
        wake: Callable[[str, str], object],
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._endpoints = [e for e in endpoints if e.spec.managed and e.spec.warm is not None]
        self._clock = clock
        self._wake = wake  # (key, actor)
        self._leading = leading  # among replicas the leader wakes, as it puts to sleep
        self._handled: dict[str, float] = {}  # key -> start of the last window it was woken for

    @property
    def needed(self) -> bool:
        return bool(self._endpoints)

    async def run_pass(self) -> None:
        """Wake for the windows that began; then wait for the next start."""
        now = self._clock.now()
        next_start: float | None = None
        retry = False  # a window began that could not be acted on yet
        for endpoint in self._endpoints:
            schedule = endpoint.spec.warm
            assert schedule is not None
            window = schedule.window_at(now)
            if window is not None and self._leading() and self._handled.get(endpoint.key) != window[0]:
                if endpoint.status() in _WOKEN_OR_WAKING or endpoint.operation == "wake":
                    self._handled[endpoint.key] = window[0]
                elif endpoint.reachable and endpoint.operation is None:
                    self._wake(endpoint.key, ACTOR)
                    self._handled[endpoint.key] = window[0]
                else:
                    retry = True
            elif window is not None and not self._leading():
                retry = True  # a follower looks again: it may lead by then
            upcoming = schedule.next_start(now)
            if upcoming is not None and (next_start is None or upcoming < next_start):
                next_start = upcoming
        wait = min(_IDLE_PASS if next_start is None else max(0.0, next_start - now), _IDLE_PASS)
        if retry:  # look again at the next reading of the endpoints, or a minute later
            await wait_any(
                self._clock, [endpoint.updated() for endpoint in self._endpoints], min(wait, _RETRY)
            )
        else:
            await self._clock.sleep(wait)
