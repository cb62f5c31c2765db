"""The manager's background tasks beside polling, auto-sleep and replica sync: finishing what a
previous run left unfinished, HF's live prices, HF's own idle timers, and the wakes by schedule and
ahead of predicted returns (each loop only where an endpoint needs it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from crazy_gary.clock import Clock
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.restarts import finish_unfinished
from crazy_gary.core.scaling import ScalingKeeper, set_idle_timers
from crazy_gary.core.supervisor import Supervisor
from crazy_gary.core.wakes_ahead import WakesAhead
from crazy_gary.core.warmups import ScheduledWakes

__all__ = ["start_side_tasks"]


def start_side_tasks(
    supervisor: Supervisor,
    endpoints: Iterable[Endpoint],
    clock: Clock,
    *,
    operate: Callable[..., object],
    wake: Callable[[str, str], object],
    leading: Callable[[], bool],
    read_prices: Callable[[], Awaitable[None]],
    scaling: ScalingKeeper,
    alone: bool = True,
) -> list[asyncio.Task[None]]:
    """Start them under `supervisor`; `wake(key, actor)` wakes, `leading()` says whether this
    replica leads (the others leave the wakes to it); `alone` without other replicas."""
    endpoints = list(endpoints)
    tasks = [
        supervisor.once("restart-recovery", lambda: finish_unfinished(endpoints, clock, operate)),
        supervisor.once("live-prices", read_prices),
        supervisor.once("idle-timers", lambda: set_idle_timers(endpoints, clock, scaling)),
    ]
    scheduled = ScheduledWakes(endpoints, clock, wake, leading)
    if scheduled.needed:
        tasks.append(supervisor.loop("warm-up schedule", scheduled.run_pass))
    ahead = WakesAhead(endpoints, clock, wake, leading, alone=alone)
    if ahead.needed:
        tasks.append(supervisor.loop("predicted wakes", ahead.run_pass))
    return tasks
