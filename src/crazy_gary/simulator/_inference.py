"""Each endpoint's own address, `/endpoints/{name}`: a vLLM server behind HF's proxy.

The proxy answers 503 while the endpoint is not running (and a request to a scaled-to-zero
endpoint starts it), 400 "Invalid state" while it is paused, and holds a request carrying
`X-Scale-Up-Timeout` until the endpoint runs or the seconds pass.
"""

from __future__ import annotations

import math
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from crazy_gary.clock import wait_event

from ._http import error, read_json, require_token
from ._openai import completion_json, models_json, stream_events
from ._state import EndpointRecord
from ._text import ChatRequestError, compose, parse_chat_request
from ._world import World

__all__ = ["InferenceAPI", "drop_connection"]

_STARTING = frozenset({"pending", "initializing", "updating"})
_BROKEN = frozenset({"failed", "updateFailed"})
_SCALE_UP_HEADER = "x-scale-up-timeout"


class InferenceAPI:
    """`POST /v1/chat/completions`, `GET /v1/models` and `GET /health` of every endpoint."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[BaseRoute]:
        base = "/endpoints/{name}"
        return [
            Route(base + "/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route(base + "/v1/models", self.list_models, methods=["GET"]),
            Route(base + "/health", self.health, methods=["GET"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        record = self._record(request)
        self.world.count(record.name, "inference")
        faults = record.faults
        if self.world.roll(faults.disconnect_rate):
            return await drop_connection(request)
        if faults.latency_ms > 0:
            await self.world.clock.sleep(faults.latency_ms / 1000)
        refusal = await self._admit(request, record)
        if refusal is not None:
            return refusal
        try:
            chat = parse_chat_request(await read_json(request))
        except ChatRequestError as exc:
            raise HTTPException(400, f"Invalid chat completion request: {exc}") from exc
        if self.world.roll(faults.error_rate):
            return error(faults.error_status, "Simulated inference fault")
        completion = compose(record.name, chat)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(self.world.now())
        if chat.stream:
            events = stream_events(
                completion_id,
                created,
                record.name,
                completion,
                include_usage=chat.include_usage,
                pace=self._pace_one_token,
            )
            return StreamingResponse(events, media_type="text/event-stream")
        await self._pace(completion.completion_tokens)
        return JSONResponse(completion_json(completion_id, created, record.name, completion))

    async def list_models(self, request: Request) -> Response:
        record = self._record(request)
        refusal = await self._admit(request, record)
        if refusal is not None:
            return refusal
        created = int(record.created_at)
        return JSONResponse(models_json(record.name, created, str(record.spec["model"]["repository"])))

    async def health(self, request: Request) -> Response:
        record = self._record(request)
        self.world.count(record.name, "health")
        refusal = await self._admit(request, record)
        return refusal if refusal is not None else Response(status_code=200)

    def _record(self, request: Request) -> EndpointRecord:
        require_token(request, self.world.config.token)
        name = request.path_params["name"]
        record = self.world.records.get(name)
        if record is None:
            raise HTTPException(404, f"Endpoint {name} not found")
        return record

    async def _admit(self, request: Request, record: EndpointRecord) -> Response | None:
        """None when the endpoint may answer now, else the proxy's refusal (after any hold)."""
        refusal = self._refusal(record, may_start=True)
        if refusal is None:
            return None
        timeout = _scale_up_timeout(request)
        if timeout is None or record.state(self.world.now()) not in _STARTING:
            return refusal
        if await self._hold(record, timeout):
            return None
        if self.world.closed:
            return error(503, "Service Unavailable: the simulator is shutting down")
        if self.world.records.get(record.name) is not record:
            return error(503, f"Service Unavailable: endpoint {record.name} was removed")
        return self._refusal(record, may_start=False)

    def _refusal(self, record: EndpointRecord, *, may_start: bool) -> Response | None:
        """The proxy's answer for an endpoint that is not running; may start a scaled-to-zero one."""
        state = record.state(self.world.now())
        if state == "running":
            return None
        if state == "paused":
            return error(400, f"Invalid state: endpoint {record.name} is paused, resume it first")
        if state in _BROKEN:
            return error(503, f"Service Unavailable: endpoint {record.name} is {state}")
        if state == "scaledToZero" and may_start:
            self.world.start(record)
        return error(503, f"Service Unavailable: endpoint {record.name} is {state}, retry later")

    async def _hold(self, record: EndpointRecord, timeout: float) -> bool:
        """Wait on the clock until the endpoint runs (True), or stops starting, or is removed, or
        `timeout` seconds pass (False)."""
        clock = self.world.clock
        deadline = clock.monotonic() + timeout
        while self.world.records.get(record.name) is record and not self.world.closed:
            now = clock.now()
            state = record.state(now)
            if state == "running":
                return True
            remaining = deadline - clock.monotonic()
            if state not in _STARTING or remaining <= 0:
                return False
            ready_at = record.ready_at()
            wait = remaining if ready_at is None else min(remaining, ready_at - now)
            await wait_event(clock, record.changed, wait)
        return False

    async def _pace(self, tokens: int) -> None:
        delay = tokens / self.world.config.tokens_per_second
        if delay > 0:
            await self.world.clock.sleep(delay)

    async def _pace_one_token(self) -> None:
        await self._pace(1)


def _scale_up_timeout(request: Request) -> float | None:
    raw = request.headers.get(_SCALE_UP_HEADER)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise HTTPException(400, f"X-Scale-Up-Timeout must be a number of seconds >= 0, not {raw!r}")
    return seconds


async def drop_connection(request: Request) -> Response:
    """Close the client's connection without any answer, as a network fault would."""
    # An ASGI app cannot close its connection, so reach below the interface. Uvicorn hands the app
    # bound methods of its per-request cycle object, which holds the connection's transport;
    # `receive` reaches the handler unwrapped (Starlette wraps `send` in its exception layers).
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    abort = getattr(transport, "abort", None)  # asyncio's and uvloop's transports both have it
    if abort is None:
        raise ConnectionAbortedError("simulated dropped connection")  # not under uvicorn
    abort()
    while (await request.receive())["type"] != "http.disconnect":
        pass  # the server marks the cycle disconnected; whatever is sent next is discarded
    return Response(status_code=500)
