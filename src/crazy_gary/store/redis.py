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
import dataclasses
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from crazy_gary.clock import Clock
from crazy_gary.core.ports import Presence, Reading, UpstreamEndpoint
from crazy_gary.core.supervisor import ErrorHook, Supervisor, stop

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCoordination", "SharedRedis"]

logger = logging.getLogger("crazy_gary.redis")

LEASE = 5.0  # seconds the leader's lease lasts unless renewed (renewed every second)
PRESENCE = 5.0  # seconds a replica's requests in flight count for the others after its last word
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

    async def start(self, on_error: ErrorHook | None = None) -> None:
        """Ping once (a replica starts even when Redis is down, degraded), then keep watching, in a task
        that survives unexpected errors (logged, and told to `on_error`)."""
        await self.check()
        if self._monitor is None:
            self._monitor = Supervisor(self._clock, on_error).loop("redis-monitor", self._watch)

    async def aclose(self) -> None:
        monitor, self._monitor = self._monitor, None
        await stop([monitor])
        await self.client.aclose()

    async def check(self) -> bool:
        """Whether Redis answers a ping now; updates `healthy`."""
        from redis.exceptions import RedisError

        try:
            if self._known is False:
                # Redis may have restarted: pooled connections (the rate limits' too) are dead, and the
                # first call on each would fail and mark the replica degraded again
                await self.client.connection_pool.disconnect()
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
        """One look: wait, then ping (the supervisor runs it again and again)."""
        await self._clock.sleep(self._check_every)
        await self.check()

    def _where(self) -> str:
        """host:port of the URL, never its password."""
        kwargs: dict[str, Any] = self.client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


# Take the lease when nobody holds it, renew it when we do; 1 when we lead after the call.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Keep each namespace's newest reading: KEYS[1] a hash (namespace → reading as JSON), KEYS[2] a sorted
# set (namespace → when it was asked); ARGV holds (namespace, asked_at, JSON) triples. Every reading.
_READINGS = """
for i = 1, #ARGV, 3 do
  local known = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if known == false or tonumber(known) < tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  end
end
return redis.call('HGETALL', KEYS[1])
"""


class RedisCoordination:
    """`crazy_gary.core.ports.Coordination` through Redis; while Redis is away, every claim is granted
    and every replica leads (each acts alone, as a single process would).

    Keys: `wake:<endpoint>` (a claim), `leader` (the lease, holding the leader's id), `activity` (a
    sorted set: endpoint → newest activity, raised only with ZADD GT), `replicas` (a sorted set:
    replica → when it last spoke), `in-flight:<replica>` (a hash: endpoint → requests, expiring
    with the replica's silence, so a replica that died stops counting), `readings` and `readings-at` (a
    hash of each namespace's newest reading of HF as JSON, and when it was asked) and `circuits` (a
    sorted set: endpoint → when its circuit last opened, raised only with ZADD GT).
    """

    def __init__(
        self,
        redis: SharedRedis,
        clock: Clock,
        *,
        replica: str | None = None,
        wake_claim: float = WAKE_CLAIM,
        lease: float = LEASE,
        presence: float = PRESENCE,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self.replica = replica or uuid.uuid4().hex[:12]
        self._wake_claim_ms = int(wake_claim * 1000)
        self._lease_ms = int(lease * 1000)
        self._presence = presence
        self.replicas_seen = 1  # replicas alive at the last exchange (each one's share of a quota)
        self._lead = redis.client.register_script(_LEAD)
        self._readings = redis.client.register_script(_READINGS)

    async def lead(self) -> bool:
        from redis.exceptions import RedisError

        if self._redis.healthy:
            try:
                leader = self._redis.key("leader")
                return bool(await self._lead([leader], [self.replica, self._lease_ms]))
            except (RedisError, OSError) as exc:
                self._redis.failed(exc)
        return True  # alone while Redis is away

    async def share(self, ours: Mapping[str, Presence]) -> Mapping[str, Presence] | None:
        from redis.exceptions import RedisError

        if not self._redis.healthy:
            return None
        try:
            return await self._exchange(ours)
        except (RedisError, OSError, ValueError) as exc:
            self._redis.failed(exc)
            return None

    async def _exchange(self, ours: Mapping[str, Presence]) -> dict[str, Presence]:
        key, now = self._redis.key, self._clock.now()
        mine = key("in-flight", self.replica)
        # typed loosely: redis-py's stubs want a mapping of its own value types, which dict[str, int] is not
        counts: dict[Any, Any] = {e: presence.in_flight for e, presence in ours.items() if presence.in_flight}
        async with self._redis.client.pipeline(transaction=False) as pipe:
            for endpoint, presence in ours.items():
                if presence.last_activity is not None:
                    pipe.zadd(key("activity"), {endpoint: presence.last_activity}, gt=True)
            pipe.delete(mine)
            if counts:
                pipe.hset(mine, mapping=counts)
                pipe.pexpire(mine, int(self._presence * 1000))
            pipe.zadd(key("replicas"), {self.replica: now})
            pipe.zremrangebyscore(key("replicas"), "-inf", now - self._presence)
            pipe.zrange(key("activity"), 0, -1, withscores=True)
            pipe.zrange(key("replicas"), 0, -1)
            answers = await pipe.execute()
        activity = {name.decode(): float(score) for name, score in answers[-2]}
        self.replicas_seen = max(1, len(answers[-1]))
        in_flight: dict[str, int] = {}
        async with self._redis.client.pipeline(transaction=False) as pipe:
            for replica in answers[-1]:
                pipe.hgetall(key("in-flight", replica.decode()))
            for per_replica in await pipe.execute():
                for endpoint, count in per_replica.items():
                    in_flight[endpoint.decode()] = in_flight.get(endpoint.decode(), 0) + int(count)
        return {
            endpoint: Presence(activity.get(endpoint), in_flight.get(endpoint, 0))
            for endpoint in set(activity) | set(in_flight) | set(ours)
        }

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

    async def share_readings(self, ours: Iterable[Reading]) -> list[Reading] | None:
        from redis.exceptions import RedisError

        if not self._redis.healthy:
            return None
        arguments: list[Any] = []
        for reading in ours:
            arguments += [reading.namespace, repr(reading.asked_at), _encode(reading)]
        try:
            flat = await self._readings(
                [self._redis.key("readings"), self._redis.key("readings-at")], arguments
            )
        except (RedisError, OSError) as exc:
            self._redis.failed(exc)
            return None
        readings = (_decode(namespace, raw) for namespace, raw in zip(flat[::2], flat[1::2], strict=True))
        return [reading for reading in readings if reading is not None]

    async def share_circuits(self, opened: Mapping[str, float]) -> Mapping[str, float] | None:
        from redis.exceptions import RedisError

        if not self._redis.healthy:
            return None
        circuits = self._redis.key("circuits")
        try:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                for endpoint, at in opened.items():
                    pipe.zadd(circuits, {endpoint: at}, gt=True)
                pipe.zrange(circuits, 0, -1, withscores=True)
                answers = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis.failed(exc)
            return None
        return {endpoint.decode(): float(at) for endpoint, at in answers[-1]}


_UPSTREAM_FIELDS = frozenset(field.name for field in dataclasses.fields(UpstreamEndpoint))


def _encode(reading: Reading) -> str:
    endpoints = [dataclasses.asdict(endpoint) for endpoint in reading.endpoints]
    return json.dumps({"asked_at": reading.asked_at, "endpoints": endpoints, "error": reading.error})


def _decode(namespace: bytes, raw: bytes) -> Reading | None:
    """A reading as another replica stored it; None when it cannot be read (not one of ours)."""
    try:
        data = json.loads(raw)
        endpoints = tuple(
            UpstreamEndpoint(**{k: v for k, v in item.items() if k in _UPSTREAM_FIELDS})
            for item in data["endpoints"]
        )
        error = data["error"]
        return Reading(namespace.decode(), float(data["asked_at"]), endpoints, error if error else None)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
