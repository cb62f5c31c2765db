"""Quotas on the manual clock, in process and in the machine's Redis: reservations that hold under
concurrency, settlement, release, lapsed reservations, windows that end, the share while Redis is away."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.store.redis import SharedRedis
from crazy_gary.usage.quotas import (
    LAPSES_AFTER,
    QuotaExceeded,
    QuotaLimit,
    Quotas,
    reservation_size,
    windows_at,
)
from crazy_gary.usage.tokens import TokenCount

REDIS = "redis://127.0.0.1:6379/0"
NOON = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC).timestamp()
LIMITS = {"alice": QuotaLimit(tokens_per_day=2000, tokens_per_month=5000)}


@pytest.fixture(params=["local", "redis"])
async def quotas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Quotas, ManualClock]]:
    clock = ManualClock(start=NOON)
    if request.param == "local":
        yield Quotas(LIMITS, clock), clock
        return
    shared = SharedRedis(REDIS, f"crazy-gary-test-{uuid.uuid4().hex[:8]}:", clock)
    await shared.start()
    try:
        yield Quotas(LIMITS, clock, redis=shared), clock
    finally:
        keys = [key async for key in shared.client.scan_iter(match=shared.prefix + "*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.aclose()


def test_a_reservation_is_what_a_request_may_write_and_read() -> None:
    assert reservation_size({"max_tokens": 100}, 400, 1024) == 200
    assert reservation_size({"max_output_tokens": 50}, 0, 1024) == 50
    assert reservation_size({"max_tokens": 0, "max_completion_tokens": 30}, 8, 1024) == 32
    assert reservation_size({}, 40, 1024) == 1034
    assert reservation_size(None, 0, 7) == 7


def test_windows_are_utc_days_and_months() -> None:
    day, month = windows_at(LIMITS["alice"], dt.datetime(2026, 2, 28, 23, 59, tzinfo=dt.UTC).timestamp())
    assert (day.id, month.id) == ("2026-02-28", "2026-02")
    assert day.ends_at == dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp() == month.ends_at


async def test_concurrent_reservations_never_exceed_the_quota(quotas: tuple[Quotas, ManualClock]) -> None:
    """60 reservations of 100 tokens at once against 2,000 a day: exactly 20 are taken."""
    book, _ = quotas

    async def take() -> bool:
        try:
            await book.reserve("alice", 100)
        except QuotaExceeded:
            return False
        return True

    taken = await asyncio.gather(*(take() for _ in range(60)))
    assert sum(taken) == 20
    report = (await book.report(["alice"]))["alice"]
    assert report["tokens_per_day"]["used"] == 2000 and report["tokens_per_day"]["remaining"] == 0
    assert report["tokens_per_month"]["used"] == 2000


async def test_settling_counts_what_was_used_and_releasing_frees_it(
    quotas: tuple[Quotas, ManualClock],
) -> None:
    book, _ = quotas
    used = await book.reserve("alice", 1500)
    failed = await book.reserve("alice", 500)
    with pytest.raises(QuotaExceeded) as refused:
        await book.reserve("alice", 1)
    assert refused.value.window == "tokens_per_day" and refused.value.retry_after == 12 * 3600
    await book.settle(used, 300)
    await book.settle(failed, 0)
    assert (await book.report(["alice"]))["alice"]["tokens_per_day"]["used"] == 300
    await book.reserve("alice", 1700)  # fits again


async def test_settle_soon_settles_by_outcome(quotas: tuple[Quotas, ManualClock]) -> None:
    """Tokens said: those count; a failure: released; an answer that said nothing: all of it."""
    book, _ = quotas
    for tokens, status in ((TokenCount(10, 20), 200), (None, 502), (None, 200)):
        book.settle_soon(await book.reserve("alice", 100), tokens, status)
    await book.drain()
    assert (await book.report(["alice"]))["alice"]["tokens_per_day"]["used"] == 130


async def test_a_reservation_never_settled_lapses() -> None:
    """A request whose replica died holding a reservation: it stops counting after LAPSES_AFTER."""
    clock = ManualClock(start=NOON)
    book = Quotas(LIMITS, clock)
    await book.reserve("alice", 2000)
    with pytest.raises(QuotaExceeded):
        await book.reserve("alice", 10)
    await clock.advance(LAPSES_AFTER + 1)
    await book.reserve("alice", 10)


async def test_in_redis_a_dead_replicas_lapsed_reservation_is_dropped_by_redis_time() -> None:
    """A reservation whose lapse time (Redis's own clock) has passed no longer counts, and goes;
    a live one of another replica still does."""
    clock = ManualClock(start=NOON)
    shared = SharedRedis(REDIS, f"crazy-gary-test-{uuid.uuid4().hex[:8]}:", clock)
    await shared.start()
    try:
        book = Quotas(LIMITS, clock, redis=shared)
        (day, _) = windows_at(LIMITS["alice"], NOON)
        name = shared.key("quota", "alice", day.id)
        seconds, _micro = await shared.client.time()
        await shared.client.hset(
            name, mapping={"r:dead": f"1500:{seconds - 5}", "r:live": f"400:{seconds + 600}"}
        )
        await book.reserve("alice", 1600)  # 400 live + 1600 = 2000: the dead 1500 does not count
        assert not await shared.client.hexists(name, "r:dead")
        with pytest.raises(QuotaExceeded):
            await book.reserve("alice", 1)
    finally:
        keys = [key async for key in shared.client.scan_iter(match=shared.prefix + "*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.aclose()


async def test_a_new_day_starts_afresh_but_the_month_goes_on(quotas: tuple[Quotas, ManualClock]) -> None:
    book, clock = quotas
    await book.settle(await book.reserve("alice", 2000), 2000)
    await clock.advance(12 * 3600)
    await book.settle(await book.reserve("alice", 2000), 2000)
    await clock.advance(24 * 3600)
    with pytest.raises(QuotaExceeded) as refused:
        await book.reserve("alice", 1001)
    assert refused.value.window == "tokens_per_month"
    assert refused.value.retry_after == int(dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp() - clock.now())


async def test_a_restart_starts_each_window_at_what_the_store_says(
    quotas: tuple[Quotas, ManualClock],
) -> None:
    book, _ = quotas

    async def used_since(key: str, since: float) -> int:
        return 1900 if since >= NOON - 12 * 3600 else 4000

    await book.seed(used_since)
    with pytest.raises(QuotaExceeded):
        await book.reserve("alice", 101)
    await book.reserve("alice", 100)


async def test_while_redis_is_away_each_replica_holds_its_share() -> None:
    """Redis unreachable: the replica counts on its own, against the limit divided among the replicas
    it last saw (here 2)."""
    clock = ManualClock(start=NOON)
    shared = SharedRedis("redis://127.0.0.1:1/0", "t:", clock)
    await shared.start()
    try:
        assert not shared.healthy
        book = Quotas(LIMITS, clock, redis=shared, replicas=lambda: 2)
        await book.reserve("alice", 1000)
        with pytest.raises(QuotaExceeded):
            await book.reserve("alice", 1)
    finally:
        await shared.aclose()


async def test_redis_going_away_and_back_starts_each_book_from_the_store() -> None:
    """Redis goes away after 1,500 of 2,000 were used: this replica (one of two) may use half of the
    500 left on its own; when Redis is back, its count is raised to what the store says."""
    clock = ManualClock(start=NOON)
    shared = SharedRedis(REDIS, f"crazy-gary-test-{uuid.uuid4().hex[:8]}:", clock)
    await shared.start()
    stored = {"used": 0}

    async def used_since(key: str, since: float) -> int:
        return stored["used"]

    try:
        book = Quotas(LIMITS, clock, redis=shared, replicas=lambda: 2)
        await book.seed(used_since)
        await book.settle(await book.reserve("alice", 1500), 1500)
        stored["used"] = 1500
        shared.failed(ConnectionError("gone"))
        with pytest.raises(QuotaExceeded):
            await book.reserve("alice", 251)  # (2,000 - 1,500) / 2 = 250 of its own
        await book.settle(await book.reserve("alice", 250), 250)
        stored["used"] = 1750
        assert await shared.check()
        await shared.client.delete(shared.key("quota", "alice", windows_at(LIMITS["alice"], NOON)[0].id))
        report = (await book.report(["alice"]))["alice"]["tokens_per_day"]  # Redis emptied: from the store
        assert report["used"] == 1750
    finally:
        keys = [key async for key in shared.client.scan_iter(match=shared.prefix + "*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.aclose()
