"""Replays of the endpoints' own traffic: the store's request history under the policies.

`crazy-gary replay --from-store DAYS` replays the requests of the last days as one trace, like a
file. `GET /api/endpoints/policies` replays each managed endpoint alone, with its own requests and
no fallback, so that each endpoint's figures are its own; an endpoint that had no request in the
period is replayed too (a policy that keeps it up bills it all the same).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crazy_gary.core.ports import PersistedEndpoint
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.replay.policies import Policy
from crazy_gary.replay.session import DEFAULT_COLD_START, replay, setup_for
from crazy_gary.replay.traces import TraceError, TraceRequest
from crazy_gary.store.base import RequestRecord

if TYPE_CHECKING:
    from crazy_gary.config import Settings

__all__ = ["DAY", "measured_cold_start", "read_store", "replay_each_endpoint", "trace_of"]

DAY = 86_400.0


def trace_of(records: Iterable[RequestRecord]) -> list[TraceRequest]:
    """The stored requests as a trace, oldest first: the requests of each second spread over it,
    its tokens shared between them."""
    trace = []
    for r in records:
        count = max(1, r.requests)
        prompt, completion = r.prompt_tokens // count, r.completion_tokens // count
        trace += [
            TraceRequest(r.at + index / count, r.model_type, prompt, completion, r.stream)
            for index in range(count)
        ]
    trace.sort(key=lambda request: request.at)
    return trace


async def read_store(settings: Settings, since: float, until: float) -> tuple[list[TraceRequest], float]:
    """The requests the store of `settings` holds within [since, until) and the measured cold
    start; TraceError when there is no store (a SQLite file never created is not created here)."""
    from crazy_gary.store.sql import SqlStore, database_url

    url = database_url(settings.database_url, settings.data_dir)
    if settings.database_url is None and not (settings.data_dir / "crazy-gary.db").exists():
        raise TraceError(
            f"--from-store: no store at {settings.data_dir / 'crazy-gary.db'}; `crazy-gary serve` writes"
            " it (set CRAZY_GARY_DATA_DIR or CRAZY_GARY_DATABASE_URL as for serve)"
        )
    store = SqlStore(url)
    await store.open()
    try:
        records = await store.requests(since, until)
        memories = await store.load_endpoints()
    finally:
        await store.close()
    return trace_of(records), measured_cold_start(memories, settings.endpoints.values())


def measured_cold_start(memories: Mapping[str, PersistedEndpoint], specs: Iterable[EndpointSpec]) -> float:
    """The longest cold start measured on the managed endpoints (their last ones), else 300 s."""
    keys = {spec.key for spec in specs if spec.managed}
    measured = [m.cold_start for key, m in memories.items() if key in keys and m.cold_start]
    return max(measured) if measured else DEFAULT_COLD_START


def replay_each_endpoint(
    requests: Sequence[TraceRequest],
    specs: Sequence[EndpointSpec],
    policies: Sequence[Policy],
    *,
    cold_start: float,
    period: tuple[float, float],
    wake_timeout: float = 300.0,
    fallback_wait: float = 5.0,
) -> dict[str, dict[str, Any]]:
    """`{key: {policy: figures}}` for each managed endpoint, alone over `period` with its requests."""
    figures: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if not spec.managed:
            continue
        own = [request for request in requests if request.model == spec.key]
        alone = dataclasses.replace(spec, fallback=None)
        setup = setup_for(
            own,
            [alone],
            cold_start,
            policies,
            wake_timeout=wake_timeout,
            fallback_wait=fallback_wait,
            period=period,
        )
        figures[spec.key] = replay(own, setup, policies)["policies"]
    return figures
