"""SharedRedis and RedisCoordination against the machine's Redis, and a port where nothing listens."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.ports import Presence, Reading, UpstreamEndpoint
from crazy_gary.core.supervisor import BackgroundFailure
from crazy_gary.store.redis import RedisCoordination, SharedRedis

REDIS = "redis://127.0.0.1:6379/0"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_keys_are_under_the_prefix_and_redis_is_healthy() -> None:
    """Keys start with the prefix; a reachable Redis is healthy from the first ping."""
    prefix = f"crazy-gary-test-{uuid.uuid4().hex[:8]}:"
    shared = SharedRedis(REDIS, prefix, ManualClock())
    try:
        await shared.start()
        assert shared.healthy
        key = shared.key("activity", "120b")
        assert key == prefix + "activity:120b"
        await shared.client.set(key, "1", ex=5)
        assert await shared.client.get(key) == b"1"
        await shared.client.delete(key)
    finally:
        await shared.aclose()


async def test_unreachable_redis_is_degraded_then_recovers_on_the_clock() -> None:
    """Nothing listening: start() succeeds, degraded; the watch pings again every second of the clock
    and notices when Redis answers (here: the client is pointed at a live Redis)."""
    clock = ManualClock()
    shared = SharedRedis(f"redis://127.0.0.1:{_closed_port()}/0", "t:", clock)
    try:
        await shared.start()
        assert not shared.healthy
        await clock.advance(1.0)
        assert not shared.healthy
        live = SharedRedis(REDIS, "t:", clock)
        shared.client, dead = live.client, shared.client
        await dead.aclose()
        for _ in range(50):  # the ping runs on the loop once the clock fired
            await clock.advance(1.0)
            if shared.healthy:
                break
        assert shared.healthy
    finally:
        await shared.aclose()


@pytest.fixture
async def seats() -> AsyncIterator[tuple[RedisCoordination, RedisCoordination]]:
    """Two replicas' coordination on the machine's Redis, under a prefix of their own."""
    prefix = f"crazy-gary-test-{uuid.uuid4().hex[:8]}:"
    clock = ManualClock()
    shared = SharedRedis(REDIS, prefix, clock)
    await shared.start()
    try:
        yield (
            RedisCoordination(shared, clock, replica="a", lease=0.2),
            RedisCoordination(shared, clock, replica="b", lease=0.2),
        )
    finally:
        keys = [key async for key in shared.client.scan_iter(match=prefix + "*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.aclose()


async def test_one_replica_leads_until_its_lease_lapses(seats: tuple[RedisCoordination, ...]) -> None:
    """The first to ask leads and keeps leading while it renews; the other takes over once the
    leader has been silent for its lease."""
    a, b = seats
    assert await a.lead() and not await b.lead()
    assert await a.lead() and not await b.lead()
    for _ in range(50):
        await asyncio.sleep(0.05)
        if await b.lead():
            break
    assert not await a.lead() and await b.lead()


async def test_the_newest_reading_of_a_namespace_is_shared(seats: tuple[RedisCoordination, ...]) -> None:
    """A reading replaces an older one of its namespace, never a newer one, and comes back whole,
    failed readings included."""
    a, b = seats
    running = UpstreamEndpoint("demo", "gpt-oss-120b", "running", url="http://x", vendor="aws")
    paused = UpstreamEndpoint("demo", "gpt-oss-120b", "paused")
    assert await a.share_readings([Reading("demo", 100.0, (running,))]) == [
        Reading("demo", 100.0, (running,))
    ]
    older = Reading("demo", 99.5, (paused,))
    failed = Reading("other", 50.0, error="The management API answered 500.")
    together = await b.share_readings([older, failed])
    assert together is not None
    assert sorted(together, key=lambda o: o.namespace) == [Reading("demo", 100.0, (running,)), failed]
    newer = Reading("demo", 100.25, (paused,))
    assert newer in (await a.share_readings([newer]) or [])


async def test_presence_and_circuits_are_shared(seats: tuple[RedisCoordination, ...]) -> None:
    """Activity keeps the newest time and requests in flight add up over replicas; a circuit keeps
    its latest opening."""
    a, b = seats
    await a.share({"120b": Presence(200.0, 2)})
    together = await b.share({"120b": Presence(150.0, 1), "20b": Presence(None, 0)})
    assert together is not None
    assert together["120b"] == Presence(200.0, 3)
    assert together["20b"] == Presence(None, 0)
    await a.share_circuits({"120b": 300.0})
    assert await b.share_circuits({"120b": 250.0}) == {"120b": 300.0}
    assert await b.share_circuits({}) == {"120b": 300.0}


async def test_one_wake_claim_at_a_time(seats: tuple[RedisCoordination, ...]) -> None:
    """The first replica to claim an endpoint's wake gets it; the other does not."""
    a, b = seats
    assert await a.claim_wake("120b")
    assert not await b.claim_wake("120b")
    assert await b.claim_wake("20b")


async def test_the_health_monitor_outlives_an_unexpected_error() -> None:
    """A ping that fails with an unexpected error is reported as `redis-monitor`; after the backoff the
    monitor pings again."""
    clock = ManualClock()
    shared = SharedRedis(f"redis://127.0.0.1:{_closed_port()}/0", "t:", clock)
    failures: list[BackgroundFailure] = []
    check, pings = shared.check, []

    async def flaky_check() -> bool:
        pings.append(clock.now())
        if len(pings) == 1:
            raise RuntimeError("not a RedisError")
        return await check()

    try:
        await shared.start(failures.append)
        shared.check = flaky_check  # type: ignore[method-assign]
        await clock.advance(1.0)
        assert [(f.task, f.retry_in) for f in failures] == [("redis-monitor", 1.0)]
        await clock.advance(2.0)  # the backoff, then the check interval
        assert len(pings) == 2 and not shared.healthy
    finally:
        await shared.aclose()
