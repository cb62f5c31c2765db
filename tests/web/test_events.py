"""GET /api/endpoints/events: the Server-Sent Events stream, over a real socket, on the manual clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.engine import Engine, RequestEvent
from crazy_gary.web.events import EventHub

from ..core.fakes import FakeManagement
from .conftest import USER, VIEWER, Api

Event = tuple[str, Any]  # ("state", {...}) or ("comment", "heartbeat")


class Stream:
    """An open event stream, read one SSE block at a time, parsed here independently of our code."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._lines: AsyncIterator[str] = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        async with asyncio.timeout(timeout):
            name, data, comment = "message", [], None
            async for line in self._lines:
                if line == "":
                    if data:
                        return name, json.loads("\n".join(data))
                    if comment is not None:
                        return "comment", comment
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "":
                    comment = value
                elif field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
            raise EOFError("the stream ended")

    async def until(self, wanted: str, status: str | None = None, **fields: Any) -> Any:
        """Skip events until one named `wanted` whose data has `fields` (and whose endpoint has
        `status`); its data."""
        while True:
            name, data = await self.next()
            if name != wanted or any(data.get(k) != v for k, v in fields.items()):
                continue
            if status is None or data["endpoint"]["status"] == status:
                return data


async def open_stream(api: Api, key: str | None = VIEWER) -> tuple[Stream, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = api.http.build_request("GET", "/api/endpoints/events", headers=headers)
    response = await api.http.send(request, stream=True)
    return Stream(response), response


async def test_events_need_a_viewer_key(api: Api) -> None:
    """Without a key the stream is refused with 401 in the error shape; a user key is enough."""
    response = await api.get("/api/endpoints/events", key=None)
    assert response.status_code == 401
    assert response.json()["code"] == "missing_key"
    stream, raw = await open_stream(api, key=USER)
    try:
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert (await stream.next())[0] == "snapshot"
    finally:
        await raw.aclose()


async def test_snapshot_then_operation_and_state_events(api: Api) -> None:
    """The stream starts with every endpoint object, then tells a wake as it happens: the operation
    starting, the state becoming starting then running, and the operation finishing."""
    stream, raw = await open_stream(api)
    try:
        name, snapshot = await stream.next()
        assert name == "snapshot"
        assert set(snapshot["endpoints"]) == {"120b", "20b"}
        assert snapshot["endpoints"]["120b"]["status"] == "sleeping"
        assert snapshot["requests"] == []

        assert (await api.post("/api/endpoints/wake/120b")).status_code == 202
        started = await stream.until("operation", phase="started")
        assert started["model_type"] == "120b"
        assert started["operation"] == "wake"
        assert started["actor"] == "ops"
        assert started["endpoint"]["status"] == "starting"
        state = await stream.until("state", model_type="120b")
        assert state["endpoint"]["status"] == "starting"

        await api.clock.advance(21)
        await stream.until("state", "running", model_type="120b")
        finished = await stream.until("operation", phase="finished")
        assert finished["endpoint"]["auto_sleep_in"] == 15 * 60  # the countdown starts with the end
        assert finished["success"] is True
        assert finished["error"] is None
        assert started["timestamp"] < finished["timestamp"] <= api.clock.now()
    finally:
        await raw.aclose()


async def test_heartbeat_after_quiet_time(api: Api) -> None:
    """After 15 s of the clock without events the stream carries a `: heartbeat` comment."""
    stream, raw = await open_stream(api)
    try:
        await stream.next()  # snapshot
        await api.clock.advance(14)
        await api.clock.advance(1.5)
        assert await stream.next() == ("comment", "heartbeat")
    finally:
        await raw.aclose()


async def test_a_closed_connection_leaves_no_subscriber(api: Api) -> None:
    """A client that goes away is forgotten: the hub has no one left to write to."""
    stream, raw = await open_stream(api)
    await stream.next()
    hub: EventHub = api.app.state.events
    assert hub.connections == 1
    await raw.aclose()
    for _ in range(200):
        if hub.connections == 0:
            break
        await asyncio.sleep(0.01)
    assert hub.connections == 0


def _request_event(model: str, served_by: str | None, reason: str | None = None) -> RequestEvent:
    return RequestEvent(model, served_by, reason, 200, False, 0.0123, 0.001, 0, (), "chat")


async def _hub(queue_size: int = 1000) -> tuple[EventHub, Engine, ManualClock]:
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    engine = Engine.from_settings(Settings(CRAZY_GARY_SIMULATE=True), hf, clock)
    return EventHub(engine.manager, engine, clock, queue_size=queue_size), engine, clock


async def test_requests_reach_the_snapshot_and_reset_countdowns() -> None:
    """Ended requests are kept for the next snapshot (newest 50) and sent as `request` events, with
    one `countdown` event per serving endpoint per second at most."""
    hub, engine, clock = await _hub()
    for index in range(60):
        engine.announce(
            _request_event("120b", "20b", "primary_starting") if index else _request_event("x", None)
        )
    snapshot = hub.snapshot()
    assert len(snapshot["requests"]) == 50
    assert snapshot["requests"][-1] == {
        "model": "120b",
        "served_by": "20b",
        "fallback_reason": "primary_starting",
        "status": 200,
        "stream": False,
        "api": "chat",
        "latency_ms": 12.3,
        "timestamp": clock.now(),
    }
    subscriber = hub.join()
    engine.announce(_request_event("120b", "20b"))
    engine.announce(_request_event("120b", "20b"))
    await clock.advance(1.0)
    engine.announce(_request_event("120b", "20b"))
    names = [event.name for event in subscriber.queue]
    assert names == ["request", "countdown", "request", "request", "countdown"]


async def test_a_client_that_cannot_keep_up_is_ended() -> None:
    """When a client's queue is full its stream ends (it reconnects to a fresh snapshot); others go on."""
    hub, engine, _ = await _hub(queue_size=3)
    slow, fast = hub.join(), hub.join()
    for _ in range(3):
        engine.announce(_request_event("120b", None))
    fast.queue.clear()
    engine.announce(_request_event("120b", None))
    assert slow.ended and not slow.queue
    assert not fast.ended and len(fast.queue) == 1
    assert [item async for item in hub.frames(slow)] == []


async def test_close_ends_every_stream_after_what_was_queued() -> None:
    """Stopping the server ends open streams once their queued events are out; new ones end at once."""
    hub, engine, _ = await _hub()
    subscriber = hub.join()
    engine.announce(_request_event("120b", None))
    hub.close()
    assert [wire.split(b"\n")[0] async for wire in hub.frames(subscriber)] == [b"event: request"]
    assert [item async for item in hub.frames(hub.join())] == []


async def test_a_request_that_opens_the_circuit_sends_the_endpoint() -> None:
    """When requests open an endpoint's circuit breaker, a `state` event carries the open circuit;
    requests that change nothing send none."""
    hub, engine, _ = await _hub()
    breaker = engine.manager.endpoint("20b").breaker
    subscriber = hub.join()
    engine.announce(_request_event("20b", "20b"))
    assert [event.name for event in subscriber.queue] == ["request", "countdown"]
    for _ in range(5):
        breaker.record_failure()
    engine.announce(_request_event("20b", None, "primary_error"))
    name, data, _ = subscriber.queue[-1]
    assert name == "state"
    assert data["model_type"] == "20b"
    assert data["endpoint"]["circuit"] == "open"


async def test_an_event_is_framed_once_for_every_stream_and_carries_one_endpoint() -> None:
    """Every stream is given the very same bytes for an event, and an event about one endpoint
    carries that endpoint's object only (the snapshot alone carries them all)."""
    hub, engine, _ = await _hub()
    first, second = hub.join(), hub.join()
    engine.manager.wake("120b", actor="ops")
    assert [event.name for event in first.queue][:2] == ["operation", "state"]
    assert all(a.wire is b.wire for a, b in zip(first.queue, second.queue, strict=True))
    head, data, end = first.queue[0].wire.split(b"\n", 2)
    assert head == b"event: operation" and end == b"\n"
    told = json.loads(data.removeprefix(b"data: "))
    assert told["model_type"] == "120b" and told["endpoint"]["status"] == "starting"
    assert "endpoints" not in told and set(told["endpoint"]) >= {"status", "url", "circuit"}


async def test_the_snapshot_is_kept_until_something_changes_or_a_second_passes() -> None:
    """New streams share one framed snapshot while nothing changed; a wake, a request or a second of
    the clock (the countdowns) makes a fresh one."""
    hub, engine, clock = await _hub()
    kept = hub.snapshot_frame()
    assert hub.snapshot_frame() is kept
    assert kept.startswith(b"event: snapshot\ndata: ") and kept.endswith(b"\nretry: 2000\n\n")
    engine.announce(_request_event("20b", "20b"))
    after_request = hub.snapshot_frame()
    assert after_request is not kept and b'"latency_ms": 12.3' in after_request
    await clock.advance(0.5)
    assert hub.snapshot_frame() is after_request
    await clock.advance(0.5)
    aged = hub.snapshot_frame()
    assert aged is not after_request
    engine.manager.wake("120b", actor="ops")
    after_wake = hub.snapshot_frame()
    assert after_wake is not aged and b'"status": "starting"' in after_wake


class _Reader:
    """A stream's frames read in the background: what arrived so far, taken once the loop settled."""

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.arrived: list[bytes] = []
        self._task = asyncio.ensure_future(self._read(frames))

    async def _read(self, frames: AsyncIterator[bytes]) -> None:
        async for wire in frames:
            self.arrived.append(wire)

    async def take(self, clock: ManualClock) -> list[bytes]:
        await clock.settle()
        arrived, self.arrived = self.arrived, []
        return arrived


async def test_each_stream_gets_its_heartbeat_after_its_own_quiet_time() -> None:
    """One task keeps every stream's heartbeat: a stream that was just sent an event waits its own
    15 s, one that was quiet gets the comment at 15 s."""
    hub, _, clock = await _hub()
    quiet, busy = hub.join(), hub.join()
    quiet_frames, busy_frames = _Reader(hub.frames(quiet)), _Reader(hub.frames(busy))
    await clock.advance(10)
    hub.leave(quiet)
    hub.deliver("state", {"model_type": "20b"})  # to the busy one only
    hub._subscribers.add(quiet)
    assert [wire.split(b"\n")[0] for wire in await busy_frames.take(clock)] == [b"event: state"]
    await clock.advance(5)
    assert await quiet_frames.take(clock) == [b": heartbeat\n\n"]
    assert await busy_frames.take(clock) == []
    await clock.advance(10)
    assert await busy_frames.take(clock) == [b": heartbeat\n\n"]
    assert await quiet_frames.take(clock) == []
    hub.close()
    assert await quiet_frames.take(clock) == [] and await busy_frames.take(clock) == []


async def test_the_event_stream_is_in_the_openapi_schema(api: Api) -> None:
    """A plain route, still documented: `GET /api/endpoints/events` answers text/event-stream."""
    schema = (await api.get("/openapi.json", key=None)).json()
    answer = schema["paths"]["/api/endpoints/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in answer["content"]


async def test_head_of_the_event_stream_answers_its_headers_and_joins_no_stream(api: Api) -> None:
    """HEAD (which Starlette's GET routes take) is the stream's headers and no body: nobody joins."""
    hub: EventHub = api.app.state.events
    response = await api.http.request(
        "HEAD", "/api/endpoints/events", headers={"Authorization": f"Bearer {VIEWER}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b"" and hub.connections == 0


def test_an_event_of_values_json_has_no_name_for_is_still_one_line_of_json() -> None:
    """A float that is not finite becomes null and another value its text: JSON.parse reads it."""
    import datetime
    import math

    from crazy_gary.web.event_frames import frame

    when = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
    wire = frame("state", {"cost": math.inf, "ratio": math.nan, "at": when, "items": [1.5, -math.inf]})
    name, data, end = wire.decode().split("\n", 2)
    assert name == "event: state" and end == "\n"
    assert json.loads(data.removeprefix("data: ")) == {
        "cost": None,
        "ratio": None,
        "at": "2026-12-02 00:00:00+00:00",
        "items": [1.5, None],
    }
