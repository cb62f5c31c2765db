"""Live events: `GET /api/endpoints/events`, a Server-Sent Events stream for the page and `watch`.

Every connection starts with a `snapshot` (every endpoint object and the recent requests), then
receives `state`, `countdown`, `operation` and `request` events as they happen, and an SSE comment
(`: heartbeat`) whenever nothing else was sent for `heartbeat` seconds of the injected clock. Events
that concern an endpoint carry that one endpoint's whole object (only the snapshot carries every
endpoint), so a client only ever replaces what it holds. A client too slow to keep up (its queue
fills) has its stream ended; reconnecting gives it a fresh snapshot, so it never shows a state that
silently missed an event.

Observers of the manager and of the engine put events into one bounded queue per connection, without
blocking either. Each event is framed (`event:`, `data:` as JSON) once, when it happens, and the same
bytes go to every connection; the snapshot of a big fleet (half a megabyte for 1,000 endpoints) is
framed once per change and kept for new connections at most `SNAPSHOT_MAX_AGE` seconds, as the status
answer is (`status_cache`). FastAPI's own SSE responses encode each event for each connection and
run two task groups per connection (a producer and a keep-alive pinger): with a thousand streams open,
that work per event and the memory per stream were what a change cost (bench/README.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request, Response

from crazy_gary.clock import Clock
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.engine import Engine, RequestEvent
from crazy_gary.web.auth import require
from crazy_gary.web.event_frames import Frame, frame
from crazy_gary.web.openapi import add_openapi_paths
from crazy_gary.web.streams import SSE_HEADERS, ClosingStream

__all__ = ["EventHub", "Frame", "Relay", "document_events", "frame", "router"]

router = APIRouter()
_require_viewer = require("viewer")

HEARTBEAT = 15.0  # seconds of silence before a `: heartbeat` comment
RETRY_MS = 2000  # what a browser's EventSource waits before reconnecting
_RECENT = 50  # requests kept for the snapshot
_QUEUE = 1000  # events waiting for one slow client before its stream is ended
_COUNTDOWN_EVERY = 1.0  # at most one countdown event per endpoint per second
_REQUESTS_PER_SECOND = 20  # request events sent per second at most; the rest only in /metrics
SNAPSHOT_MAX_AGE = 1.0  # seconds a framed snapshot is kept while nothing changes (for the countdowns)
_PIECE = 65_536  # bytes of a snapshot per write: a slow reader holds at most about this much here
HEARTBEAT_FRAME = b": heartbeat\n\n"


class Relay(Protocol):
    """Where events of this replica's making go for the other replicas (`crazy_gary.store.redis_events`)."""

    def publish(self, name: str, data: dict[str, Any]) -> None: ...


@dataclass(eq=False)  # each is itself: hashed by identity
class _Subscriber:
    quiet_since: float  # monotonic time of the last bytes its stream was given
    queue: collections.deque[Frame] = field(default_factory=collections.deque)
    ended: bool = False
    heartbeat_due: bool = False
    # what its stream waits on (a future rather than an asyncio.Event: a tenth of the memory)
    waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


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
        self._heartbeats: asyncio.Task[None] | None = None
        self._last_joined: tuple[tuple[Frame, ...], bytes] = ((), b"")
        # ours as (event, when), to be turned into objects only for a snapshot; the other replicas' as objects
        self._recent: collections.deque[tuple[RequestEvent, float] | dict[str, Any]] = collections.deque(
            maxlen=_RECENT
        )
        self._countdown_sent: dict[str, float] = {}
        self._circuits = {key: view.circuit for key, view in manager.all_status().items()}
        self._requests_seen = 0  # moves with `_recent`: a kept snapshot is stale once it moved
        self._snapshot: tuple[tuple[int, int], float, bytes] | None = None  # (what, built at, frame)
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
        self._requests_seen += 1
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
            self._requests_seen += 1
        self._publish(name, data)

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        data.setdefault("timestamp", self._clock.now())
        if not self._subscribers:
            return
        event = Frame(name, data, frame(name, data))  # framed once, for every stream
        for subscriber in list(self._subscribers):
            if len(subscriber.queue) >= self._queue_size:
                self._end(subscriber)  # too slow: it reconnects and gets a fresh snapshot
                continue
            subscriber.queue.append(event)
            subscriber.wake()

    # -- streams ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What a new connection starts from: every endpoint object and the recent requests."""
        endpoints = {key: view.to_dict() for key, view in self._manager.all_status().items()}
        requests = [item if isinstance(item, dict) else _request_object(*item) for item in self._recent]
        return {"endpoints": endpoints, "requests": requests, "timestamp": self._clock.now()}

    def snapshot_frame(self) -> bytes:
        """The framed snapshot: the kept one while the endpoints' views and the recent requests are
        as they were and it is younger than `SNAPSHOT_MAX_AGE`, else a fresh one."""
        now = self._clock.monotonic()
        what = (self._manager.revision, self._requests_seen)
        kept = self._snapshot
        if kept is not None and kept[0] == what and 0 <= now - kept[1] < SNAPSHOT_MAX_AGE:
            return kept[2]
        framed = frame("snapshot", self.snapshot(), retry=RETRY_MS)
        self._snapshot = (what, now, framed)
        return framed

    def join(self) -> _Subscriber:
        """A queue of events for one new connection, until `leave`."""
        subscriber = _Subscriber(self._clock.monotonic())
        if self._closed:
            subscriber.ended = True
            return subscriber
        self._subscribers.add(subscriber)
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.create_task(self._beat())
        return subscriber

    def leave(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[_Subscriber]:
        """A queue of events for as long as the block runs (`join`, then `leave`)."""
        subscriber = self.join()
        try:
            yield subscriber
        finally:
            self.leave(subscriber)

    async def _beat(self) -> None:
        """One task for every stream's heartbeat: it sleeps until the stream that has been quiet
        longest is due, and tells the due ones. A timer task of its own for each stream (as
        `wait_event` makes) would be two more tasks per stream to wake and cancel on every event:
        with a thousand streams, most of the time an event took to reach them."""
        while self._subscribers:
            now = self._clock.monotonic()
            oldest = now
            for subscriber in self._subscribers:
                if now - subscriber.quiet_since >= self.heartbeat:
                    subscriber.quiet_since = now
                    subscriber.heartbeat_due = True
                    subscriber.wake()
                oldest = min(oldest, subscriber.quiet_since)
            await self._clock.sleep(oldest + self.heartbeat - now)

    def _joined(self, events: tuple[Frame, ...]) -> bytes:
        """The bytes of several events, joined once for every stream that has the same ones waiting
        (as every stream has, but one that joined meanwhile): each stream keeps its last bytes while
        it waits for the next, and a copy for each would be a thousand copies."""
        kept_events, kept = self._last_joined
        if len(kept_events) == len(events) and all(a is b for a, b in zip(kept_events, events, strict=True)):
            return kept
        joined = b"".join(event.wire for event in events)
        self._last_joined = (events, joined)
        return joined

    async def frames(self, subscriber: _Subscriber) -> AsyncIterator[bytes]:
        """The subscriber's events as they come, all those waiting in one piece of bytes; the
        heartbeat comment when `heartbeat` seconds passed without any. Ends once it is ended and
        what was queued is out."""
        queued = subscriber.queue
        while True:
            if queued:
                subscriber.quiet_since = self._clock.monotonic()
                subscriber.heartbeat_due = False
                if len(queued) == 1:
                    yield queued.popleft().wire
                else:
                    waiting = self._joined(tuple(queued))
                    queued.clear()
                    yield waiting
            elif subscriber.ended:
                return
            elif subscriber.heartbeat_due:
                subscriber.heartbeat_due = False
                yield HEARTBEAT_FRAME
            else:
                await subscriber.wait()

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def _end(self, subscriber: _Subscriber) -> None:
        subscriber.ended = True
        subscriber.queue.clear()
        subscriber.wake()
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (the server is stopping) and accept no new ones."""
        self._closed = True
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        for subscriber in list(self._subscribers):
            subscriber.ended = True
            subscriber.wake()
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


async def _stream(hub: EventHub, subscriber: _Subscriber) -> AsyncIterator[bytes]:
    snapshot = memoryview(hub.snapshot_frame())
    for start in range(0, len(snapshot), _PIECE):  # each write waits for the last to drain
        yield snapshot[start : start + _PIECE]  # type: ignore[misc]  # bytes-like, as uvicorn sends it
    async for wire in hub.frames(subscriber):
        yield wire


async def events(request: Request) -> Response:
    """Server-Sent Events: a `snapshot`, then `state`, `countdown`, `operation` and `request` events,
    and a `: heartbeat` comment after 15 s without any."""
    await _require_viewer(request)
    if request.method == "HEAD":  # Starlette's GET routes take HEAD too: its headers, no stream
        return Response(status_code=200, headers=dict(SSE_HEADERS), media_type="text/event-stream")
    hub: EventHub = request.app.state.events
    subscriber = hub.join()

    async def leave() -> None:
        hub.leave(subscriber)

    return ClosingStream(_stream(hub, subscriber), 200, dict(SSE_HEADERS), "text/event-stream", leave)


# A plain Starlette route rather than a FastAPI one: FastAPI's dependency solving and request
# wrappers (exit stacks, contexts) stay alive as long as the stream, about 8 kB per open stream
# (tracemalloc, through bench/); it asks for the key itself, with the dependency the other routes use.
router.add_route("/api/endpoints/events", events, methods=["GET"], include_in_schema=False)
_OPERATION = {
    "tags": ["endpoints"],
    "summary": "Events",
    "description": events.__doc__,
    "operationId": "events_api_endpoints_events_get",
    "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {}}}},
}


def document_events(app: FastAPI) -> None:
    """Put the event stream into the app's OpenAPI schema, which FastAPI writes only for its own routes."""
    add_openapi_paths(app, {"/api/endpoints/events": {"get": _OPERATION}})
