"""One policy replayed: the trace's requests sent, each at its time, through the same manager,
router and auto-sleep code as `serve`, on a manual clock against the simulator's state machine
(`crazy_gary.replay.hf`); what it billed, how many requests met a cold start and how long they waited.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from crazy_gary.clock import ManualClock
from crazy_gary.core.costs import billed_seconds, price_for
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.routing import Router
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus
from crazy_gary.engine import Engine
from crazy_gary.errors import CrazyGaryError
from crazy_gary.replay.hf import ReplayInference, ReplayManagement
from crazy_gary.replay.policies import Policy
from crazy_gary.replay.traces import TraceRequest

__all__ = ["Figures", "ReplaySetup", "hourly_price", "replay_policy"]

_WARM = frozenset({EndpointStatus.RUNNING})


@dataclass(frozen=True)
class ReplaySetup:
    """What every policy of one replay shares: the endpoints, the timings of `serve`, the cold start,
    and the period billed (from `start` to `end`, Unix seconds)."""

    specs: Sequence[EndpointSpec]
    cold_start: float
    start: float
    end: float
    fallback_wait: float = 5.0
    wake_timeout: float = 300.0
    max_pending: int = 1_000_000  # a replay holds every request, as a patient caller would
    poll_interval: float = 600.0
    poll_fast_interval: float = 1.0


@dataclass
class Figures:
    """What one policy did with the trace (README, "Choosing a policy": the figures per policy)."""

    billed_seconds: float = 0.0
    cost: float = 0.0
    requests: int = 0
    cold_starts: int = 0
    cold_hits: int = 0
    fallbacks: int = 0
    failed: int = 0
    waits: list[float] = field(default_factory=list, repr=False)
    saved: float | None = None
    vs_oracle: float | None = None  # cost over the oracle's: how far from the least it could cost

    def to_dict(self) -> dict[str, Any]:
        waits = sorted(self.waits) or [0.0]
        return {
            "billed_seconds": round(self.billed_seconds, 3),
            "cost": round(self.cost, 6),
            "requests": self.requests,
            "cold_starts": self.cold_starts,
            "cold_hits": self.cold_hits,
            "fallbacks": self.fallbacks,
            "failed": self.failed,
            "added_wait_p50": round(statistics.median(waits), 3),
            "added_wait_p95": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 3),
            "added_wait_max": round(waits[-1], 3),
            "saved": None if self.saved is None else round(self.saved, 6),
            "vs_oracle": None if self.vs_oracle is None else round(self.vs_oracle, 3),
        }


@functools.cache
def _body(key: str, stream: bool) -> bytes:
    return json.dumps({"model": key, "messages": [], "stream": stream, "max_tokens": 1}).encode()


async def _send(
    engine: Engine, key: str, request: TraceRequest, clock: ManualClock, figures: Figures
) -> None:
    """One request of the trace, at its time: whether it met a cold start, what it waited, who served."""
    arrived = clock.monotonic()
    if engine.manager.endpoint(key).status() not in _WARM:
        figures.cold_hits += 1
    try:
        exchange = await engine.open(engine.parse(_body(key, request.stream)))
    except CrazyGaryError:
        figures.failed += 1
        return
    figures.waits.append(clock.monotonic() - arrived)
    if exchange.served_by != key:
        figures.fallbacks += 1
    await exchange.aclose()


async def replay_policy(requests: Sequence[TraceRequest], setup: ReplaySetup, policy: Policy) -> Figures:
    """Replay `requests` (oldest first; `model` an endpoint key or None: the first endpoint) under
    `policy`, which must run live (not the oracle)."""
    clock = ManualClock(start=setup.start, until_idle=True)
    hf = ReplayManagement.with_cold_start(clock, setup.cold_start, [spec.name or "" for spec in setup.specs])
    manager = HuggingFaceEndpointManager(
        _scheduled(setup.specs, requests, policy),
        hf,
        clock,
        wake_timeout=setup.wake_timeout,
        auto_sleep=policy.auto_sleep,
        poll_interval=setup.poll_interval,
        poll_fast_interval=setup.poll_fast_interval,
    )
    router = Router(manager, clock, fallback_wait=setup.fallback_wait, max_pending=setup.max_pending)
    engine = Engine(manager, router, ReplayInference(hf), clock, token="replay")
    figures = Figures(requests=len(requests))
    first = setup.specs[0].key
    async with manager:
        await clock.settle()
        if policy.always:
            for spec in setup.specs:
                manager.wake(spec.key, actor="replay")
        tasks = []
        for request in requests:
            await clock.advance(max(0.0, request.at - clock.now()))
            tasks.append(
                asyncio.ensure_future(_send(engine, request.model or first, request, clock, figures))
            )
        await clock.advance(max(0.0, setup.end - clock.now()))
        while not all(task.done() for task in tasks):
            await clock.advance(1.0)
        await asyncio.gather(*tasks)
    _bill(figures, hf, setup)
    return figures


def _scheduled(
    specs: Sequence[EndpointSpec], requests: Sequence[TraceRequest], policy: Policy
) -> list[EndpointSpec]:
    """The endpoints, those the trace asks for with the policy's warm windows or adaptive idle time
    (a fallback the trace does not name keeps the fixed timer)."""
    if policy.warm is None and policy.adaptive is None:
        return list(specs)
    first = specs[0].key
    asked = {request.model or first for request in requests}
    return [
        replace(spec, warm=policy.warm, adaptive=policy.adaptive) if spec.key in asked else spec
        for spec in specs
    ]


def hourly_price(spec: EndpointSpec, hf: ReplayManagement) -> float:
    """The endpoint's price per hour: the settings', else HF's published one for its hardware."""
    if spec.price_per_hour is not None:
        return spec.price_per_hour
    record = hf.world.records.get(spec.name or "")
    if record is None:
        return 0.0
    compute = record.spec["compute"]
    return (
        price_for(f"{record.spec['provider']['vendor']} {compute['instanceType']} {compute['instanceSize']}")
        or 0.0
    )


def _bill(figures: Figures, hf: ReplayManagement, setup: ReplaySetup) -> None:
    """Billed seconds and cost over the replay's period, and the starts, from the states entered."""
    for spec in setup.specs:
        history = hf.history.get(spec.name or "", [])
        seconds = billed_seconds(history, setup.start, setup.end)
        figures.billed_seconds += seconds
        figures.cost += seconds * hourly_price(spec, hf) / 3600
        figures.cold_starts += sum(1 for _, state in history if state == "pending")
