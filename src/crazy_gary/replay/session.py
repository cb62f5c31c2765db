"""A whole replay: a trace under several policies, each billed over the same period, with what
each saved against `always`."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from crazy_gary.clock import ManualClock
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.replay.hf import ReplayManagement
from crazy_gary.replay.policies import Policy, oracle_billing
from crazy_gary.replay.runner import Figures, ReplaySetup, hourly_price, replay_policy
from crazy_gary.replay.traces import TraceError, TraceRequest

__all__ = ["DEFAULT_COLD_START", "replay", "setup_for"]

DEFAULT_COLD_START = 300.0
PARALLEL_FROM = 20_000  # requests times live policies from which each policy gets a process
TAIL = 3600.0  # seconds after the last request that are billed too: time for any policy to sleep


def setup_for(
    requests: Sequence[TraceRequest],
    specs: Sequence[EndpointSpec],
    cold_start: float,
    policies: Sequence[Policy],
    *,
    wake_timeout: float = 300.0,
    fallback_wait: float = 5.0,
    period: tuple[float, float] | None = None,
) -> ReplaySetup:
    """The endpoints a replay runs: the managed ones (an unmanaged endpoint never sleeps), priced;
    the period from a minute before the first request (or `period`'s start) to well after the last
    (and at least to `period`'s end); a wake timeout a cold start of the replay's length never reaches."""
    managed = [spec for spec in specs if spec.managed]
    if not managed:
        raise TraceError("no managed endpoint is configured: there is nothing to put to sleep")
    keys = {spec.key for spec in managed}
    unknown = sorted({request.model for request in requests if request.model and request.model not in keys})
    if unknown:
        raise TraceError(
            f"the trace asks for {', '.join(unknown[:5])}, not a managed endpoint (configured: {', '.join(sorted(keys))})"
        )
    longest = max((policy.auto_sleep for policy in policies), default=0.0)
    if not requests and period is None:
        raise TraceError("the trace holds no request")
    start = period[0] if period is not None else requests[0].at - 60.0
    end = requests[-1].at + max(TAIL, longest + cold_start + 60.0) if requests else start
    return ReplaySetup(
        specs=managed,
        cold_start=cold_start,
        start=start,
        end=max(end, period[1]) if period is not None else end,
        fallback_wait=fallback_wait,
        wake_timeout=max(wake_timeout, cold_start * 1.5 + 60.0),
    )


def _oracle(requests: Sequence[TraceRequest], setup: ReplaySetup) -> Figures:
    figures = Figures(requests=len(requests))
    first = setup.specs[0].key
    names = [spec.name or "" for spec in setup.specs]
    hf = ReplayManagement.with_cold_start(ManualClock(), setup.cold_start, names)  # for the prices
    for spec in setup.specs:
        arrivals = [request.at for request in requests if (request.model or first) == spec.key]
        billed, starts = oracle_billing(arrivals, setup.cold_start)
        figures.billed_seconds += billed
        figures.cost += billed * hourly_price(spec, hf) / 3600
        figures.cold_starts += starts
    figures.waits = [0.0] * len(requests)
    return figures


def _replay_live(requests: Sequence[TraceRequest], setup: ReplaySetup, policy: Policy) -> Figures:
    return asyncio.run(replay_policy(requests, setup, policy))


def _replay_all(
    requests: Sequence[TraceRequest], setup: ReplaySetup, live: Sequence[Policy]
) -> list[Figures]:
    """The live policies replayed, side by side in processes of their own when the work is worth
    it (each replay is one event loop on one core)."""
    workers = min(len(live), os.cpu_count() or 1)
    if workers < 2 or len(requests) * len(live) < PARALLEL_FROM:
        return [_replay_live(requests, setup, policy) for policy in live]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(
            pool.map(_replay_live, *zip(*[(requests, setup, policy) for policy in live], strict=True))
        )


def replay(
    requests: Sequence[TraceRequest], setup: ReplaySetup, policies: Sequence[Policy]
) -> dict[str, Any]:
    """`{"policies": {name: figures}}` for each policy, `saved` against `always` (whose cost alone,
    when it is not asked for, is replayed without the requests: it bills the same) and `vs_oracle`,
    its cost over the oracle's."""
    live = [policy for policy in policies if not policy.oracle]
    always = next((policy for policy in live if policy.always), None)
    figures = dict(zip([policy.name for policy in live], _replay_all(requests, setup, live), strict=True))
    baseline = figures[always.name] if always else _replay_live([], setup, Policy("always", always=True))
    oracle = _oracle(requests, setup)
    answer: dict[str, Any] = {}
    for policy in policies:
        result = _oracle(requests, setup) if policy.oracle else figures[policy.name]
        result.saved = baseline.cost - result.cost
        result.vs_oracle = result.cost / oracle.cost if oracle.cost > 0 else None
        answer[policy.name] = result.to_dict()
    return {"policies": answer}
