"""Streamed answers of the gateway: relayed as they come, held with heartbeats while an endpoint
starts, and ended with an error event the caller's client understands when something breaks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import State

from crazy_gary.clock import Clock
from crazy_gary.engine import Engine, Exchange, InferenceRequest
from crazy_gary.errors import CrazyGaryError, UpstreamError
from crazy_gary.inference_requests import returned_headers

logger = logging.getLogger("crazy_gary.gateway")

__all__ = [
    "SERVED_BY",
    "ClosingStream",
    "answer_headers",
    "error_event",
    "note_served",
    "relayed_answer",
    "served_headers",
    "stream_answer",
]

SERVED_BY = "X-Crazy-Gary-Served-By"
REASON = "X-Crazy-Gary-Fallback-Reason"
HEADERS_AFTER = 4.0  # a stream held longer than this gets its headers at once
HEARTBEAT = 4.0  # SSE comment lines at least every 5 s while held
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def served_headers(exchange: Exchange) -> dict[str, str]:
    headers = {SERVED_BY: exchange.served_by}
    if exchange.fallback_reason:
        headers[REASON] = exchange.fallback_reason
    return headers


def answer_headers(exchange: Exchange, request: InferenceRequest) -> dict[str, str]:
    """The headers of the caller's answer: who served it, and for a request to an endpoint's address
    the endpoint's own end-to-end headers too (`Location`, `Retry-After`, …), as code written for
    that address expects them."""
    if request.api != "endpoint":
        return served_headers(exchange)
    return {**returned_headers(exchange.response.headers), **served_headers(exchange)}


def note_served(state: State, exchange: Exchange) -> None:
    """Who serves the request and why, in the request's own state, for its access log line."""
    state.served_by = exchange.served_by
    state.fallback_reason = exchange.fallback_reason


async def _within(clock: Clock, task: asyncio.Task[Exchange], seconds: float) -> bool:
    """Wait for `task` at most `seconds` of clock time; True when it is done."""
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return task.done()


class ClosingStream(StreamingResponse):
    """A streamed answer that stops when the caller leaves, and always runs `on_close`.

    `on_close` runs even when the caller left before the first byte: an async generator that never
    started never runs its `finally`, and the request would stay counted in flight forever.

    Starlette's own `__call__` is replaced: under uvicorn (ASGI 2.3) it starts an anyio task group
    for each answer to notice a caller who left, about a tenth of the CPU of a streamed request
    (py-spy, through bench/), and an extra turn of the event loop before the first byte. Here the
    answer streams in the request's own task, and one plain asyncio task waits for the disconnect
    and cancels it.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        status: int,
        headers: dict[str, str],
        media_type: str,
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(body, status, headers, media_type)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None, "ASGI apps run in a task"
        left = finished = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            if not finished:
                left = True
                streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not left:
                raise
            streaming.uncancel()  # the caller left: our own cancellation, not the server's
        except OSError:
            pass  # how an ASGI 2.4 server tells of a caller who left
        finally:
            finished = True
            watcher.cancel()
            await self._on_close()


def relayed_answer(exchange: Exchange, request: InferenceRequest) -> ClosingStream:
    """The endpoint's answer, relayed as it comes, with who served it."""
    return ClosingStream(
        _relayed(exchange, request),
        exchange.response.status,
        {**answer_headers(exchange, request), **SSE_HEADERS},
        exchange.response.headers.get("content-type", "text/event-stream"),
        exchange.aclose,
    )


async def stream_answer(engine: Engine, request: InferenceRequest, clock: Clock, state: State) -> Response:
    """A streamed request's answer: the endpoint's own when it comes within `HEADERS_AFTER`, else
    headers at once (`Served-By: pending`) and heartbeats until it does."""
    task = asyncio.create_task(engine.open(request))
    try:
        answered = await _within(clock, task, HEADERS_AFTER)
    except BaseException:  # the caller left (cancelled) before anything was sent: let its request go
        _abandon(task)
        raise
    if answered:
        exchange = task.result()  # routing errors surface here as error answers
        note_served(state, exchange)
        return relayed_answer(exchange, request)

    async def close() -> None:
        if not task.done():
            task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], Exchange):
            await results[0].aclose()

    return ClosingStream(
        _held(task, request, clock, state),
        200,
        {SERVED_BY: "pending", **SSE_HEADERS},
        "text/event-stream",
        close,
    )


_abandoned: set[asyncio.Task[None]] = set()  # closings under way, kept from the garbage collector


def _abandon(task: asyncio.Task[Exchange]) -> None:
    """Cancel a request nobody waits for any more; an answer it got all the same is closed."""
    task.cancel()

    def close(done: asyncio.Task[Exchange]) -> None:
        if not done.cancelled() and done.exception() is None:
            closing = asyncio.ensure_future(done.result().aclose())
            _abandoned.add(closing)
            closing.add_done_callback(_abandoned.discard)

    task.add_done_callback(close)


async def _held(
    task: asyncio.Task[Exchange], request: InferenceRequest, clock: Clock, state: State
) -> AsyncIterator[bytes]:
    """Heartbeats while routing waits, then `: served-by …` (for the caller) and the endpoint's stream."""
    while not task.done():
        yield f": waiting for {request.key}\n\n".encode()
        await _within(clock, task, HEARTBEAT)
    try:
        exchange = task.result()
    except CrazyGaryError as exc:
        yield error_event(exc, request)
        return
    note_served(state, exchange)
    reason = f" {exchange.fallback_reason}" if exchange.fallback_reason else ""
    yield f": served-by {exchange.served_by}{reason}\n\n".encode()
    if exchange.response.status >= 400:  # its 200 went out already: the refusal as an error event
        yield error_event(await _refusal(exchange), request)
        return
    async for chunk in _relayed(exchange, request):
        yield chunk


async def _refusal(exchange: Exchange) -> UpstreamError:
    """An endpoint's error answer as an UpstreamError with the endpoint's own message."""
    status = exchange.response.status
    try:
        body = json.loads(await exchange.aread())
    except (ValueError, UpstreamError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    detail = message if isinstance(message, str) and message else "no details"
    return UpstreamError(f"{exchange.served_by} answered {status}: {detail}", kind="status", status=status)


async def _relayed(exchange: Exchange, request: InferenceRequest) -> AsyncIterator[bytes]:
    """The endpoint's stream; one it breaks off midway ends with an error event, as vLLM sends one,
    so that the caller's client says what happened (its headers, 200, are gone already)."""
    try:
        async for chunk in exchange.aiter_bytes():
            yield chunk
    except UpstreamError as exc:
        logger.warning("the stream from %s broke off: %s", exchange.served_by, exc.message)
        yield b"\n\n" + error_event(exc, request)  # the blank line ends an event cut in the middle


def error_event(exc: CrazyGaryError, request: InferenceRequest) -> bytes:
    """The last event of a stream that cannot go on. Chat and completions streams end as vLLM ends
    them, with `data: {"error": …}` and `[DONE]`; a Responses stream has no `[DONE]`, and its error
    event is `event: error` with the API's own fields (`type`, `code`, `message`) beside `error`,
    which is what the official clients raise on."""
    error = {"message": exc.message, "type": exc.code, "code": exc.code}
    if request.api == "responses":
        payload = {"type": "error", "code": exc.code, "message": exc.message, "param": None, "error": error}
        return f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
    return f"data: {json.dumps({'error': error})}\n\ndata: [DONE]\n\n".encode()
