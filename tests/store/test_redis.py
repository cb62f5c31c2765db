"""SharedRedis against the machine's Redis, and against a port where nothing listens."""

from __future__ import annotations

import socket
import uuid

from crazy_gary.clock import ManualClock
from crazy_gary.store.redis import SharedRedis

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
