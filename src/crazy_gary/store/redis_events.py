"""The event streams of all replicas as one, through Redis pub/sub (`<prefix>events`).

Events a replica makes itself (operations, requests, countdown resets) are published for the others;
those the others publish are handed to this replica's event hub, so a dashboard connected to any
replica sees what happens through every replica. State changes are not relayed: every replica applies
Hugging Face's states, read by itself or shared by the others (`crazy_gary.core.replicas`), and tells
them itself.

Publishing never waits on Redis: messages go through a bounded queue to one sender task, and are
dropped while Redis is away or the queue is full (a dashboard's next snapshot brings it up to date).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Callable
from typing import Any

from crazy_gary.clock import Clock
from crazy_gary.core.supervisor import ErrorHook, Supervisor, stop
from crazy_gary.store.redis import CHECK_EVERY, SharedRedis

__all__ = ["EventRelay"]

_CAPACITY = 1000  # messages waiting for Redis before new ones are dropped
_LISTEN_WAIT = 1.0  # seconds one read of the subscription waits for a message


class EventRelay:
    """Publishes this replica's events and delivers the other replicas' ones."""

    def __init__(self, redis: SharedRedis, replica: str, clock: Clock) -> None:
        self._redis = redis
        self._replica = replica
        self._clock = clock
        self._channel = redis.key("events")
        self._outbox: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Queue one event of ours for the other replicas (dropped while Redis is away)."""
        if self._outbox is None or not self._redis.healthy:
            return
        message = json.dumps({"replica": self._replica, "event": name, "data": data})
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(message)

    async def start(
        self, deliver: Callable[[str, dict[str, Any]], None], on_error: ErrorHook | None = None
    ) -> None:
        """Begin sending and listening, in tasks that survive unexpected errors (logged, and told to
        `on_error`)."""
        self._outbox = asyncio.Queue(_CAPACITY)
        supervisor = Supervisor(self._clock, on_error)
        self._tasks = [
            supervisor.loop("redis-events:send", functools.partial(self._send, self._outbox)),
            supervisor.loop("redis-events:listen", functools.partial(self._listen, deliver)),
        ]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        await stop(tasks)

    async def _send(self, outbox: asyncio.Queue[str]) -> None:
        from redis.exceptions import RedisError

        while True:
            message = await outbox.get()
            try:
                await self._redis.client.publish(self._channel, message)
            except (RedisError, OSError) as exc:
                self._redis.failed(exc)

    async def _listen(self, deliver: Callable[[str, dict[str, Any]], None]) -> None:
        """Stay subscribed while Redis answers; subscribe again once it is back."""
        from redis.exceptions import RedisError

        while True:
            if not self._redis.healthy:
                await self._clock.sleep(CHECK_EVERY)
                continue
            subscription = self._redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                await subscription.subscribe(self._channel)
                while self._redis.healthy:
                    message = await subscription.get_message(timeout=_LISTEN_WAIT)
                    if message is not None:
                        self._receive(message.get("data"), deliver)
            except (RedisError, OSError) as exc:
                self._redis.failed(exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await subscription.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    def _receive(self, raw: object, deliver: Callable[[str, dict[str, Any]], None]) -> None:
        try:
            message = json.loads(raw) if isinstance(raw, bytes | str) else None
        except ValueError:
            return  # not ours: another program on the channel
        if not isinstance(message, dict) or message.get("replica") == self._replica:
            return
        name, data = message.get("event"), message.get("data")
        if isinstance(name, str) and isinstance(data, dict):
            deliver(name, data)
