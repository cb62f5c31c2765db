"""What replicas share through Redis (`CRAZY_GARY_REDIS_URL`), every key under `CRAZY_GARY_REDIS_PREFIX`.

`SharedRedis` owns the connection and knows whether Redis answers. A failed call marks the replica
degraded at once, so later calls go to local state without waiting on a dead connection; a ping every
`check_every` seconds of the injected clock brings it back. Degraded is reported by `/readyz` and
`crazy_gary_degraded`, and never stops the replica from serving: local state stands in until Redis
answers again.

redis-py is imported here, when a URL is configured: a single process without Redis does not load
it (about 6 MB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from crazy_gary.clock import Clock

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCoordination", "SharedRedis"]

logger = logging.getLogger("crazy_gary.redis")

WAKE_CLAIM = 10.0  # seconds a replica's request to start an endpoint keeps the others from repeating it
CHECK_EVERY = 1.0  # seconds between pings: how soon a replica notices Redis is back (or gone)
TIMEOUT = 0.5  # seconds any Redis call may take before it counts as a failure


class SharedRedis:
    """The replica's Redis: a client, the key prefix, and whether Redis answers."""

    def __init__(
        self,
        url: str,
        prefix: str,
        clock: Clock,
        *,
        check_every: float = CHECK_EVERY,
        timeout: float = TIMEOUT,
    ) -> None:
        from redis.asyncio import Redis

        self.url = url
        self.prefix = prefix
        self._clock = clock
        self._check_every = check_every
        self.client: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._known: bool | None = None  # None until the first call: nothing to say yet
        self._monitor: asyncio.Task[None] | None = None

    def key(self, *parts: str) -> str:
        """A key of ours: the prefix, then `parts` joined by colons."""
        return self.prefix + ":".join(parts)

    async def start(self) -> None:
        """Ping once (a replica starts even when Redis is down, degraded), then keep watching."""
        await self.check()
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._watch(), name="crazy-gary-redis-health")

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        await self.client.aclose()

    async def check(self) -> bool:
        """Whether Redis answers a ping now; updates `healthy`."""
        from redis.exceptions import RedisError

        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return False
        if self._known is False:
            logger.info("Redis at %s answers again: shared state is back", self._where())
        self._known = True
        return True

    @property
    def healthy(self) -> bool:
        """Whether the last call to Redis succeeded."""
        return self._known is True

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed: degraded (local state stands in) until a ping answers again."""
        if self._known is not False:
            logger.warning(
                "Redis at %s cannot be reached (%s): serving from this replica's own state",
                self._where(),
                type(exc).__name__,
            )
        self._known = False

    async def _watch(self) -> None:
        while True:
            await self._clock.sleep(self._check_every)
            await self.check()

    def _where(self) -> str:
        """host:port of the URL, never its password."""
        kwargs: dict[str, Any] = self.client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


class RedisCoordination:
    """`crazy_gary.core.ports.Coordination` through Redis; while Redis is away, every claim is granted
    (each replica acts alone, as a single process would)."""

    def __init__(
        self, redis: SharedRedis, *, replica: str | None = None, wake_claim: float = WAKE_CLAIM
    ) -> None:
        self._redis = redis
        self.replica = replica or uuid.uuid4().hex[:12]
        self._wake_claim_ms = int(wake_claim * 1000)

    async def claim_wake(self, key: str) -> bool:
        """SET NX with an expiry: the first replica to ask within `wake_claim` seconds asks HF; the claim
        is never released early, so a replica that read the old state a moment later does not ask again."""
        from redis.exceptions import RedisError

        if not self._redis.healthy:
            return True
        try:
            claimed = await self._redis.client.set(
                self._redis.key("wake", key), self.replica, nx=True, px=self._wake_claim_ms
            )
        except (RedisError, OSError) as exc:
            self._redis.failed(exc)
            return True
        return bool(claimed)
