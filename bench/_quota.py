"""What a quota costs a request on its way: the reservation taken before it goes upstream (in
process, or one Lua script in the machine's Redis), measured in this process; the settlement after
its answer, off the request's path, is made but not timed."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from crazy_gary.clock import SystemClock
from crazy_gary.usage.quotas import QuotaLimit, Quotas
from crazy_gary.usage.tokens import TokenCount

__all__ = ["quota_check_ns"]

REDIS = "redis://127.0.0.1:6379/0"
LIMIT = {"bench": QuotaLimit(tokens_per_day=10**12, tokens_per_month=10**12)}


async def _cycles(quotas: Quotas, count: int) -> list[int]:
    """Nanoseconds of each reservation, after a warm-up of a tenth as many."""
    took = []
    for index in range(count + count // 10):
        started = time.perf_counter_ns()
        reservation = await quotas.reserve("bench", 1100)
        if index >= count // 10:
            took.append(time.perf_counter_ns() - started)
        await quotas.settle(reservation, TokenCount(100, 900).total)
    return took


async def _measure(count: int, redis: bool) -> float | None:
    clock = SystemClock()
    if not redis:
        return statistics.median(await _cycles(Quotas(LIMIT, clock), count))
    from crazy_gary.store.redis import SharedRedis

    shared = SharedRedis(REDIS, f"crazy-gary-bench-{uuid.uuid4().hex[:8]}:", clock)
    try:
        if not await shared.check():
            return None
        return statistics.median(await _cycles(Quotas(LIMIT, clock, redis=shared), count))
    finally:
        keys = [key async for key in shared.client.scan_iter(match=shared.prefix + "*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.client.aclose()


def quota_check_ns(count: int, *, redis: bool) -> float | None:
    """The median cost of a quota check; None when Redis cannot be reached."""
    return asyncio.run(_measure(count, redis))
