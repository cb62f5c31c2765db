"""The OpenAI-compatible gateway: `POST /v1/chat/completions` and `GET /v1/models` (role user)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import State

from crazy_gary.clock import Clock
from crazy_gary.core.ports import CHAT_PATH
from crazy_gary.engine import ChatRequest, Engine, Exchange
from crazy_gary.errors import CrazyGaryError, UpstreamError
from crazy_gary.web.auth import Caller, require

logger = logging.getLogger("crazy_gary.gateway")

__all__ = ["document_chat", "router"]

router = APIRouter(tags=["gateway"])
User = Annotated[Caller, Depends(require("user"))]
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


def note_served(state: State, exchange: Exchange) -> None:
    """Who serves the request and why, in the request's own state, for its access log line."""
    state.served_by = exchange.served_by
    state.fallback_reason = exchange.fallback_reason


@router.get("/v1/models")
async def models(request: Request, caller: User) -> dict[str, Any]:
    """The configured endpoints as OpenAI models, with their state."""
    engine: Engine = request.app.state.engine
    data = []
    for key, view in engine.manager.all_status().items():
        data.append(
            {
                "id": key,
                "object": "model",
                "created": 0,
                "owned_by": "crazy-gary",
                "root": view.model or view.name,
                "status": view.status.value,
            }
        )
    return {"object": "list", "data": data}


_require_user = require("user")
CHAT_DESCRIPTION = "OpenAI chat completions, streaming or not, served by the primary or its fallback."
# The chat route's entry in the OpenAPI schema, which FastAPI writes only for its own routes.
OPENAPI_PATHS: dict[str, Any] = {
    CHAT_PATH: {
        "post": {
            "tags": ["gateway"],
            "summary": "Chat Completions",
            "description": CHAT_DESCRIPTION,
            "operationId": "chat_completions_v1_chat_completions_post",
            "responses": {
                "200": {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
            },
        }
    }
}


def document_chat(app: FastAPI) -> None:
    """Put the chat route into the app's OpenAPI schema (FastAPI documents only its own routes)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            build()["paths"].update(OPENAPI_PATHS)
        schema: dict[str, Any] = app.openapi_schema or {}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions, streaming or not, served by the primary or its fallback."""
    await _require_user(request)
    engine: Engine = request.app.state.engine
    chat = engine.parse(await request.body())
    if chat.stream:
        return await _stream(engine, chat, request.app.state.clock, request.state)
    exchange = await engine.open(chat)
    note_served(request.state, exchange)
    try:
        content = await exchange.aread()
    finally:
        await exchange.aclose()
    media_type = exchange.response.headers.get("content-type", "application/json")
    return Response(content, exchange.response.status, served_headers(exchange), media_type)


# A plain Starlette route rather than a FastAPI one: the gateway's hot path skips FastAPI's
# dependency solving and request wrappers, about a seventh of the CPU a forwarded request costs
# (measured through bench/). It asks for the key itself, with the same dependency the other routes use.
router.add_route(CHAT_PATH, chat_completions, methods=["POST"], include_in_schema=False)


async def _within(clock: Clock, task: asyncio.Task[Exchange], seconds: float) -> bool:
    """Wait for `task` at most `seconds` of clock time; True when it is done."""
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return task.done()


class _ClosingStream(StreamingResponse):
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


async def _stream(engine: Engine, chat: ChatRequest, clock: Clock, state: State) -> Response:
    task = asyncio.create_task(engine.open(chat))
    if await _within(clock, task, HEADERS_AFTER):
        exchange = task.result()  # routing errors surface here as error answers
        note_served(state, exchange)
        return _ClosingStream(
            _relayed(exchange),
            exchange.response.status,
            {**served_headers(exchange), **SSE_HEADERS},
            exchange.response.headers.get("content-type", "text/event-stream"),
            exchange.aclose,
        )

    async def close() -> None:
        if not task.done():
            task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], Exchange):
            await results[0].aclose()

    return _ClosingStream(
        _held(task, chat, clock, state),
        200,
        {SERVED_BY: "pending", **SSE_HEADERS},
        "text/event-stream",
        close,
    )


async def _held(
    task: asyncio.Task[Exchange], chat: ChatRequest, clock: Clock, state: State
) -> AsyncIterator[bytes]:
    """Heartbeats while routing waits, then `: served-by …` (for the caller) and the endpoint's stream."""
    while not task.done():
        yield f": waiting for {chat.key}\n\n".encode()
        await _within(clock, task, HEARTBEAT)
    try:
        exchange = task.result()
    except CrazyGaryError as exc:
        yield _error_event(exc)
        return
    note_served(state, exchange)
    reason = f" {exchange.fallback_reason}" if exchange.fallback_reason else ""
    yield f": served-by {exchange.served_by}{reason}\n\n".encode()
    async for chunk in _relayed(exchange):
        yield chunk


async def _relayed(exchange: Exchange) -> AsyncIterator[bytes]:
    """The endpoint's stream; one it breaks off midway ends with an error event, as vLLM sends one,
    so that the caller's client says what happened (its headers, 200, are gone already)."""
    try:
        async for chunk in exchange.aiter_bytes():
            yield chunk
    except UpstreamError as exc:
        logger.warning("the stream from %s broke off: %s", exchange.served_by, exc.message)
        yield b"\n\n" + _error_event(exc)  # the blank line ends an event cut in the middle


def _error_event(exc: CrazyGaryError) -> bytes:
    error = {"error": {"message": exc.message, "type": exc.code, "code": exc.code}}
    return f"data: {json.dumps(error)}\n\ndata: [DONE]\n\n".encode()
