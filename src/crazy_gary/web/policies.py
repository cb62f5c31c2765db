"""`GET /api/endpoints/policies?days=7` (viewer): each endpoint's last days replayed under the default
policies (README, "Choosing a policy").

A replay is CPU work of seconds for a busy week, so it runs in a process of its own (spawned, not
forked: the server's threads and event loop stay out of it) and never competes with requests for
the GIL; one replay per number of days runs at a time, its answer kept for a few minutes, and at
most `MAX_WAITING` of them wait at once (a caller asking for yet another number of days gets 503).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from crazy_gary.clock import Clock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.recorder import DAY, Recorder
from crazy_gary.web.auth import Caller, require
from crazy_gary.web.errors import ApiError

__all__ = ["PolicyReplays", "router"]

router = APIRouter(tags=["records"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
KEPT_FOR = 300.0  # seconds an answer is served again before the days are replayed anew
MAX_WAITING = 2  # replays of different numbers of days waiting at once; past it, 503 at once
MAX_REPLAYED = 2_000_000  # requests a replay takes on (about a minute's work per policy at most)


def _replay_in_child(
    records: Sequence[Any],
    specs: Sequence[EndpointSpec],
    cold_start: float,
    period: tuple[float, float],
    timing: tuple[float, float],
) -> dict[str, dict[str, Any]]:
    """In the replay process: the stored seconds made a trace, each endpoint alone under the
    default policies."""
    from crazy_gary.replay.policies import DEFAULT_POLICIES, parse_policy
    from crazy_gary.replay.stored import replay_each_endpoint, trace_of

    wake_timeout, fallback_wait = timing
    return replay_each_endpoint(
        trace_of(records),
        specs,
        [parse_policy(text) for text in DEFAULT_POLICIES],
        cold_start=cold_start,
        period=period,
        wake_timeout=wake_timeout,
        fallback_wait=fallback_wait,
    )


class PolicyReplays:
    """Replays of the store's request history per endpoint, one at a time per number of days."""

    def __init__(
        self,
        recorder: Recorder,
        manager: HuggingFaceEndpointManager,
        clock: Clock,
        *,
        wake_timeout: float,
        fallback_wait: float,
    ) -> None:
        self._recorder = recorder
        self._manager = manager
        self._clock = clock
        self._timing = (wake_timeout, fallback_wait)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._answers: dict[int, tuple[float, dict[str, Any]]] = {}  # days → (replayed at, figures)
        self._running: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def figures(self, days: int) -> dict[str, Any]:
        """`{key: {policy: figures}}` of the last `days` days, replayed at most KEPT_FOR seconds ago."""
        kept = self._answers.get(days)
        if kept is not None and self._clock.now() - kept[0] < KEPT_FOR:
            return kept[1]
        running = self._running.get(days)
        if running is None:
            if len(self._running) >= MAX_WAITING:
                raise ApiError(
                    503,
                    "replay_busy",
                    "Other replays are under way; ask again in a minute.",
                    headers={"Retry-After": "60"},
                )
            running = self._running[days] = asyncio.ensure_future(self._replay(days))
            running.add_done_callback(lambda _: self._running.pop(days, None))
        return await asyncio.shield(running)  # a caller who leaves does not stop it for the others

    async def _replay(self, days: int) -> dict[str, Any]:
        from crazy_gary.replay.stored import measured_cold_start

        now = self._clock.now()
        period = (now - days * DAY, now)
        records = await self._recorder.requests(*period)  # per second: made requests in the child
        if sum(record.requests for record in records) > MAX_REPLAYED:
            raise ApiError(
                422,
                "too_many_requests_to_replay",
                f"The last {days} days hold more than {MAX_REPLAYED:,} requests; ask for fewer days.",
            )
        specs = [self._manager.spec(key) for key in self._manager.keys]
        cold_start = measured_cold_start(self._manager.memories(), specs)
        if self._pool is None:
            import multiprocessing  # here: a server nobody asks for replays never loads it

            spawn = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn)
        try:
            figures = await asyncio.get_running_loop().run_in_executor(
                self._pool, _replay_in_child, records, specs, cold_start, period, self._timing
            )
        except concurrent.futures.BrokenExecutor:
            self.close()  # the replay process died (out of memory, say): the next replay starts another
            raise ApiError(503, "replay_failed", "The replay process ended before it answered.") from None
        self._answers[days] = (now, figures)
        return figures

    def close(self) -> None:
        """Stop the replay process (a replay under way is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


@router.get("/api/endpoints/policies")
async def policies(
    request: Request,
    caller: Viewer,
    days: Annotated[int, Query(ge=1, le=90, description="how many days back to replay")] = 7,
) -> dict[str, Any]:
    """Each endpoint's requests of the last `days` days replayed alone under `idle:15m`, `adaptive`,
    `oracle` and `always`: what each would have billed and how many requests met a cold start."""
    replays: PolicyReplays = request.app.state.policy_replays
    return {"success": True, "days": days, "endpoints": await replays.figures(days)}
