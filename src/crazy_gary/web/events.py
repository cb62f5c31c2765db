"""Live events: `GET /api/endpoints/events`, a Server-Sent Events stream for the page and `watch`.

Every connection starts with a `snapshot` (every endpoint object and the recent requests), then
receives `state`, `countdown`, `operation` and `request` events as they happen, and an SSE comment
(`: heartbeat`) whenever nothing else was sent for `heartbeat` seconds of the injected clock. Events
that concern an endpoint carry its whole endpoint object, so a client only ever replaces what it
holds. A client too slow to keep up (its queue fills) has its stream ended; reconnecting gives it a
fresh snapshot, so it never shows a state that silently missed an event.

The SSE framing is FastAPI's (`EventSourceResponse`); the fan-out is ours: observers of the manager
and of the engine put events into one bounded queue per connection, without blocking either.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.engine import Engine, RequestEvent
from crazy_gary.web.auth import Caller, require

__all__ = ["EventHub", "Relay", "router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require("viewer"))]

HEARTBEAT = 15.0  # seconds of silence before a `: heartbeat` comment
RETRY_MS = 2000  # what a browser's EventSource waits before reconnecting
_RECENT = 50  # requests kept for the snapshot
_QUEUE = 1000  # events waiting for one slow client before its stream is ended
_COUNTDOWN_EVERY = 1.0  # at most one countdown event per endpoint per second
_REQUESTS_PER_SECOND = 20  # request events sent per second at most; the rest only in /metrics


class Relay(Protocol):
    """Where events of this replica's making go for the other replicas (`crazy_gary.store.redis_events`)."""

    def publish(self, name: str, data: dict[str, Any]) -> None: ...


@dataclass(eq=False)  # each is itself: hashed by identity
class _Subscriber:
    queue: collections.deque[tuple[str, dict[str, Any]]] = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False


class EventHub:
    """Fans the manager's and the engine's events out to every open event stream."""

    def __init__(
        self,
        manager: HuggingFaceEndpointManager,
        engine: Engine,
        clock: Clock,
        *,
        heartbeat: float = HEARTBEAT,
        queue_size: int = _QUEUE,
        relay: Relay | None = None,
    ) -> None:
        self._manager = manager
        self._relay = relay
        self._clock = clock
        self.heartbeat = heartbeat
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()
        # ours as (event, when), to be turned into objects only for a snapshot; the other replicas' as objects
        self._recent: collections.deque[tuple[RequestEvent, float] | dict[str, Any]] = collections.deque(
            maxlen=_RECENT
        )
        self._countdown_sent: dict[str, float] = {}
        self._circuits = {key: view.circuit for key, view in manager.all_status().items()}
        self._window = (0.0, 0)  # (second, request events sent in it)
        self._closed = False
        self._quota_observers: list[Callable[[str, str, str, int], None]] = []
        manager.subscribe(self._on_manager_event)
        engine.subscribe(self._on_request_event)

    # -- observers (called synchronously by the manager and the engine; they must not block) ----
    def _on_manager_event(self, event: ManagerEvent) -> None:
        if not self._subscribers and self._relay is None:
            return
        if event.kind == "state":
            endpoint = self._endpoint(event.key)
            self._circuits[event.key] = endpoint["circuit"]
            self._publish("state", {"model_type": event.key, "endpoint": endpoint})
        elif event.kind in ("operation", "operation_done"):
            finished = event.kind == "operation_done"
            self._tell(
                "operation",
                {
                    "model_type": event.key,
                    "operation": event.operation,
                    "phase": "finished" if finished else "started",
                    "actor": event.actor,
                    "success": event.success if finished else None,
                    "error": event.error,
                    "endpoint": self._endpoint(event.key),
                },
            )

    def _on_request_event(self, event: RequestEvent) -> None:
        # on every request of the gateway: only a deque append unless someone is watching (here, or
        # through another replica)
        self._recent.append((event, self._clock.now()))
        if not self._subscribers and self._relay is None:
            return
        second = float(int(self._clock.monotonic()))
        start, sent = self._window
        if second != start:
            start, sent = second, 0
        if sent < _REQUESTS_PER_SECOND:
            self._window = (start, sent + 1)
            self._tell("request", _request_object(event, self._clock.now()))
        else:
            self._window = (start, sent)
        if event.served_by is not None:
            self._countdown(event.served_by)
        if not self._subscribers:
            return  # circuit breakers are this replica's own: nothing to tell the others
        self._circuit(event.model)
        if event.served_by is not None and event.served_by != event.model:
            self._circuit(event.served_by)

    def _circuit(self, key: str) -> None:
        """A `state` event when a request moved the endpoint's circuit breaker (closed, open, half-open)."""
        if key not in self._circuits:  # the model asked for may be unknown (a 404)
            return
        view = self._endpoint(key)
        if view["circuit"] != self._circuits[key]:
            self._circuits[key] = view["circuit"]
            self._publish("state", {"model_type": key, "endpoint": view})

    def _countdown(self, key: str) -> None:
        now = self._clock.monotonic()
        if now - self._countdown_sent.get(key, -_COUNTDOWN_EVERY) < _COUNTDOWN_EVERY:
            return
        self._countdown_sent[key] = now
        self._tell("countdown", {"model_type": key, "endpoint": self._endpoint(key)})

    def _endpoint(self, key: str) -> dict[str, Any]:
        return self._manager.status(key).to_dict()

    def _tell(self, name: str, data: dict[str, Any]) -> None:
        """An event of this replica's making: to its own streams, and to the other replicas'."""
        data.setdefault("timestamp", self._clock.now())
        if self._relay is not None:
            self._relay.publish(name, data)
        self._publish(name, data)

    def quota_exceeded(self, key: str, model_type: str, window: str, retry_after: int) -> None:
        """A `quota_exceeded` event: a request of `key` refused by its quota (for webhooks and pages)."""
        data = {"key": key, "model_type": model_type, "window": window, "retry_after": retry_after}
        self._tell("quota_exceeded", data)
        for observer in self._quota_observers:
            observer(key, model_type, window, retry_after)

    def on_quota_exceeded(self, observer: Callable[[str, str, str, int], None]) -> None:
        """Call `observer(key, model_type, window, retry_after)` with every `quota_exceeded` of this
        replica (the webhooks; it must not block)."""
        self._quota_observers.append(observer)

    def deliver(self, name: str, data: dict[str, Any]) -> None:
        """An event another replica made: to this replica's streams (requests also to the snapshot)."""
        if name == "request":
            self._recent.append(data)
        self._publish(name, data)

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        data.setdefault("timestamp", self._clock.now())
        for subscriber in list(self._subscribers):
            if len(subscriber.queue) >= self._queue_size:
                self._end(subscriber)  # too slow: it reconnects and gets a fresh snapshot
                continue
            subscriber.queue.append((name, data))
            subscriber.ready.set()

    # -- streams ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What a new connection starts from: every endpoint object and the recent requests."""
        endpoints = {key: view.to_dict() for key, view in self._manager.all_status().items()}
        requests = [item if isinstance(item, dict) else _request_object(*item) for item in self._recent]
        return {"endpoints": endpoints, "requests": requests, "timestamp": self._clock.now()}

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[_Subscriber]:
        """A queue of events for one connection, for as long as the block runs."""
        subscriber = _Subscriber()
        if self._closed:
            subscriber.ended = True
        else:
            self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    async def events(self, subscriber: _Subscriber) -> AsyncIterator[tuple[str, dict[str, Any]] | None]:
        """The subscriber's events as they come; None when `heartbeat` seconds passed without any."""
        while True:
            if not subscriber.queue:
                if subscriber.ended:
                    return
                subscriber.ready.clear()
                if not await wait_event(self._clock, subscriber.ready, self.heartbeat):
                    yield None
                    continue
            while subscriber.queue:
                yield subscriber.queue.popleft()

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def _end(self, subscriber: _Subscriber) -> None:
        subscriber.ended = True
        subscriber.queue.clear()
        subscriber.ready.set()
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (the server is stopping) and accept no new ones."""
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.ended = True
            subscriber.ready.set()
        self._subscribers.clear()


def _request_object(event: RequestEvent, at: float) -> dict[str, Any]:
    return {
        "model": event.model,
        "served_by": event.served_by,
        "fallback_reason": event.fallback_reason,
        "status": event.status,
        "stream": event.stream,
        "api": event.api,
        "latency_ms": round(event.duration * 1000, 3),
        "timestamp": at,
    }


@router.get("/api/endpoints/events", response_class=EventSourceResponse, tags=["endpoints"])
async def events(request: Request, caller: Viewer) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: a `snapshot`, then `state`, `countdown`, `operation` and `request` events,
    and a `: heartbeat` comment after 15 s without any."""
    hub: EventHub = request.app.state.events
    with hub.subscribe() as subscriber:
        yield ServerSentEvent(event="snapshot", data=hub.snapshot(), retry=RETRY_MS)
        async for item in hub.events(subscriber):
            if item is None:
                yield ServerSentEvent(comment="heartbeat")
            else:
                name, data = item
                yield ServerSentEvent(event=name, data=data)
