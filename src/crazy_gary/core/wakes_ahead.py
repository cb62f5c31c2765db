"""Wakes ahead of a predicted return (`auto_sleep = "adaptive"`, `crazy_gary.core.returns`): the
endpoint is woken a cold start and a minute before the window in which its history says requests
return (actor `adaptive`), and auto-sleep leaves it up until the window ends (`Endpoint.awake_until`).

Only an endpoint that auto-sleep (or HF's own idle timer) put to sleep is woken so: one an operator
put to sleep stays asleep until a request or an operator wakes it. Among replicas the leader wakes,
as it puts to sleep. Each window is acted on once, late if it could not be at its time (HF
unreachable, another replica leading, a restart), as long as the endpoint would be up before the
window ends; the predictions are looked at again at least hourly, since each return seen may add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_any
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.status import EndpointStatus

__all__ = ["ACTOR", "WakesAhead"]

ACTOR = "adaptive"
_PASS = 3600.0  # seconds between looks at the predictions, at most
_RETRY = 60.0  # seconds until a window that could not be acted on is tried again, at most
_OURS = frozenset({"auto-sleep", ACTOR})  # sleeps of crazy-gary's own that a wake ahead may undo
_UP_OR_WAKING = frozenset({EndpointStatus.RUNNING, EndpointStatus.STARTING})


class WakesAhead:
    """One pass at each planned wake: wake what a predicted return wants up."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        clock: Clock,
        wake: Callable[[str, str], object],
        leading: Callable[[], bool] = lambda: True,
        *,
        alone: bool = True,
    ) -> None:
        """`alone`: no other replica; with others, a sleep this one did not see may be an
        operator's through another replica, so only the sleeps it saw are undone."""
        self._alone = alone
        self._endpoints = [
            e for e in endpoints if e.spec.managed and e.adaptive is not None and e.auto_sleep > 0
        ]
        self._clock = clock
        self._wake = wake  # (key, actor)
        self._leading = leading
        self._handled: dict[str, float] = {}  # key -> end of the last window acted on

    @property
    def needed(self) -> bool:
        return bool(self._endpoints)

    async def run_pass(self) -> None:
        """Act on the windows whose wake is due; then wait for the next wake (or an hour, or, when
        a due window could not be acted on, for the next reading of the endpoints or a minute)."""
        now = self._clock.now()
        next_wake = now + _PASS
        waiting = []  # endpoints with a due window not acted on yet
        for endpoint in self._endpoints:
            assert endpoint.adaptive is not None
            returns = endpoint.adaptive.returns
            cold_start = endpoint.expected_cold_start()
            planned = returns.next_wake(now, cold_start, self._handled.get(endpoint.key))
            while planned is not None and planned.wake_at <= now:
                if not self._act(endpoint, planned.window[1], now + cold_start):
                    waiting.append(endpoint)
                    break
                planned = returns.next_wake(now, cold_start, self._handled[endpoint.key])
            else:
                if planned is not None:
                    next_wake = min(next_wake, planned.wake_at)
        if waiting:
            wait = min(next_wake - now, _RETRY)
            await wait_any(self._clock, [endpoint.updated() for endpoint in waiting], wait)
        else:
            await self._clock.sleep(next_wake - now)

    def _act(self, endpoint: Endpoint, until: float, up_by: float) -> bool:
        """Keep the endpoint up until `until`, woken now if crazy-gary put it to sleep. True once
        the window is dealt with (kept up, woken, too late, or asleep by an operator's hand: left
        alone); False when it cannot be acted on yet (unreachable, in error, another replica leads)."""
        status = endpoint.status()
        asleep = status is EndpointStatus.SLEEPING or endpoint.operation == "sleep"
        if status in _UP_OR_WAKING or endpoint.operation == "wake":
            endpoint.awake_until = until
        elif up_by >= until or (asleep and not _put_to_sleep_by_us(endpoint, self._alone)):
            pass  # it would be up only as the window ends, or an operator wants it asleep
        elif not asleep or not endpoint.reachable or not self._leading():
            return False
        else:  # a sleep of auto-sleep's still under way is cancelled by the wake
            endpoint.awake_until = until
            self._wake(endpoint.key, ACTOR)
        self._handled[endpoint.key] = until
        return True


def _put_to_sleep_by_us(endpoint: Endpoint, alone: bool) -> bool:
    """Whether auto-sleep (or a wake ahead's end) put the endpoint to sleep, or, without other
    replicas, HF's own idle timer did (scaled to zero while no sleep was seen), not an operator."""
    if endpoint.operation == "sleep":
        return endpoint.operation_actor in _OURS
    if endpoint.slept_by is None:
        return alone and endpoint.hf_state == "scaledToZero"
    return endpoint.slept_by in _OURS
