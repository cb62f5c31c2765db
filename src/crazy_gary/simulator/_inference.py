"""Each endpoint's own address, `/endpoints/{name}`: a vLLM server behind HF's proxy.

The proxy answers 503 while the endpoint is not running or its model is still loading (and a
request to a scaled-to-zero endpoint starts it), 400 "Invalid state" while it is paused, and holds
a request carrying `X-Scale-Up-Timeout` until the endpoint answers or the seconds pass. Errors
have vLLM's shape.

A text-generation endpoint serves chat, completions and the Responses API; a sentence-embedding
endpoint serves embeddings. vLLM mounts only the routes of what its model does, so the others
answer 404, worded as vLLM words a model that does not support an API.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from crazy_gary.clock import wait_event

from ._completions import completion_stream, parse_completion_request, text_completion_json
from ._embeddings import embedding_json, parse_embedding_request
from ._http import read_json, require_token, vllm_error
from ._openai import completion_json, models_json, stream_events
from ._responses import ResponseIds, parse_responses_request, response_events, response_json
from ._state import EndpointRecord
from ._text import RequestError, compose, compose_text, parse_chat_request
from ._world import World

__all__ = ["InferenceAPI", "drop_connection"]

_STARTING = frozenset({"pending", "initializing", "updating"})
_BROKEN = frozenset({"failed", "updateFailed"})
_SCALE_UP_HEADER = "x-scale-up-timeout"
# Injected faults are named as vLLM names its own errors of these statuses.
_FAULT_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}
# Hugging Face tasks whose models vLLM serves as embedding (pooling) models.
_EMBEDDING_TASKS = frozenset({"sentence-embeddings", "feature-extraction"})
_SSE = "text/event-stream"

_Body = TypeVar("_Body")


@dataclass(frozen=True)
class _Api:
    """One of vLLM's OpenAI APIs: its name, what its bad bodies are called, who serves it."""

    name: str
    request: str
    embedding: bool = False


_CHAT = _Api("Chat Completions API", "chat completion request")
_COMPLETIONS = _Api("Completions API", "completion request")
_RESPONSES = _Api("Responses API", "responses request")
_EMBEDDINGS = _Api("Embeddings API", "embedding request", embedding=True)


class InferenceAPI:
    """vLLM's OpenAI routes (`/v1/chat/completions`, `/v1/completions`, `/v1/responses`,
    `/v1/embeddings`), `GET /v1/models` and `GET /health` of every endpoint.

    Every route but the health route is an inference route: it counts as traffic for HF's idle
    timer and always starts a scaled-to-zero endpoint (the health route does so only while the
    endpoint's `start_on` is `any`). The four OpenAI routes are counted as inference.
    """

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[BaseRoute]:
        base = "/endpoints/{name}"
        return [
            Route(base + "/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route(base + "/v1/completions", self.completions, methods=["POST"]),
            Route(base + "/v1/responses", self.responses, methods=["POST"]),
            Route(base + "/v1/embeddings", self.embeddings, methods=["POST"]),
            Route(base + "/v1/models", self.list_models, methods=["GET"]),
            Route(base + "/health", self.health, methods=["GET"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        admitted = await self._admitted(request, _CHAT, parse_chat_request)
        if isinstance(admitted, Response):
            return admitted
        record, chat = admitted
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
            return StreamingResponse(events, media_type=_SSE)
        await self._pace(completion.completion_tokens)
        return JSONResponse(completion_json(completion_id, created, record.name, completion))

    async def completions(self, request: Request) -> Response:
        admitted = await self._admitted(request, _COMPLETIONS, parse_completion_request)
        if isinstance(admitted, Response):
            return admitted
        record, body = admitted
        texts = [compose_text(record.name, prompt, body.max_tokens) for prompt in body.prompts]
        completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(self.world.now())
        if body.stream:
            events = completion_stream(
                completion_id,
                created,
                record.name,
                texts,
                include_usage=body.include_usage,
                pace=self._pace_one_token,
            )
            return StreamingResponse(events, media_type=_SSE)
        await self._pace(sum(text.completion_tokens for text in texts))
        return JSONResponse(text_completion_json(completion_id, created, record.name, texts))

    async def responses(self, request: Request) -> Response:
        admitted = await self._admitted(request, _RESPONSES, parse_responses_request)
        if isinstance(admitted, Response):
            return admitted
        record, body = admitted
        completion = compose(record.name, body.chat)
        ids, created = ResponseIds(), int(self.world.now())
        if body.stream:
            events = response_events(ids, created, record.name, body, completion, pace=self._pace_one_token)
            return StreamingResponse(events, media_type=_SSE)
        await self._pace(completion.completion_tokens)
        return JSONResponse(response_json(ids, created, record.name, body, completion))

    async def embeddings(self, request: Request) -> Response:
        name = request.path_params["name"]
        admitted = await self._admitted(
            request, _EMBEDDINGS, lambda body: parse_embedding_request(body, name)
        )
        if isinstance(admitted, Response):
            return admitted
        record, body = admitted
        embedding_id, created = f"embd-{uuid.uuid4().hex}", int(self.world.now())
        return JSONResponse(embedding_json(embedding_id, created, record.name, body))

    async def _admitted(
        self, request: Request, api: _Api, parse: Callable[[object], _Body]
    ) -> tuple[EndpointRecord, _Body] | Response:
        """What every OpenAI route does first: count the request, apply the endpoint's faults, pass
        the proxy, check that the model serves `api`, and parse the body. Returns the endpoint and
        the parsed body, or the answer to send instead."""
        record = self._record(request)
        self.world.count(record.name, "inference")
        faults = record.faults
        if self.world.roll(faults.disconnect_rate):
            return await drop_connection(request)
        if faults.latency_ms > 0:
            await self.world.clock.sleep(faults.latency_ms / 1000)
        refusal = await self._admit(request, record, inference=True)
        if refusal is not None:
            return refusal
        if _serves_embeddings(record) != api.embedding:
            return vllm_error(404, f"The model does not support {api.name}", "NotFoundError")
        try:
            body = parse(await read_json(request))
        except RequestError as exc:
            return vllm_error(400, f"Invalid {api.request}: {exc}", "BadRequestError")
        if self.world.roll(faults.error_rate):
            status = faults.error_status
            return vllm_error(status, "Simulated inference fault", _FAULT_TYPES.get(status))
        return record, body

    async def list_models(self, request: Request) -> Response:
        record = self._record(request)
        refusal = await self._admit(request, record, inference=True)
        if refusal is not None:
            return refusal
        created = int(record.created_at)
        return JSONResponse(models_json(record.name, created, str(record.spec["model"]["repository"])))

    async def health(self, request: Request) -> Response:
        record = self._record(request)
        self.world.count(record.name, "health")
        refusal = await self._admit(request, record, inference=False)
        return refusal if refusal is not None else Response(status_code=200)

    def _record(self, request: Request) -> EndpointRecord:
        require_token(request, self.world.config.token)
        name = request.path_params["name"]
        record = self.world.records.get(name)
        if record is None:
            raise HTTPException(404, f"Endpoint {name} not found")
        return record

    async def _admit(self, request: Request, record: EndpointRecord, *, inference: bool) -> Response | None:
        """None when the endpoint may answer now, else the proxy's refusal (after any hold)."""
        if inference:
            record.note_traffic(self.world.now())
        refusal = self._refusal(record, may_start=True, inference=inference)
        if refusal is None:
            return None
        timeout = _scale_up_timeout(request)
        if timeout is None or not self._on_its_way(record, self.world.now()):
            return refusal
        if await self._hold(record, timeout):
            if inference:
                record.note_traffic(self.world.now())
            return None
        if self.world.closed:
            return vllm_error(503, "Service Unavailable: the simulator is shutting down")
        if self.world.records.get(record.name) is not record:
            return vllm_error(503, f"Service Unavailable: endpoint {record.name} was removed")
        return self._refusal(record, may_start=False, inference=inference)

    def _refusal(self, record: EndpointRecord, *, may_start: bool, inference: bool) -> Response | None:
        """The proxy's answer for an endpoint that cannot answer; may start a scaled-to-zero one."""
        now = self.world.now()
        state = record.state(now)
        if state == "running":
            if record.loading(now):
                return vllm_error(503, f"Service Unavailable: endpoint {record.name} is loading its model")
            return None
        if state == "paused":
            return vllm_error(400, f"Invalid state: endpoint {record.name} is paused, resume it first")
        if state in _BROKEN:
            return vllm_error(503, f"Service Unavailable: endpoint {record.name} is {state}")
        starts = inference or record.faults.start_on == "any"
        if state == "scaledToZero" and may_start and starts:
            self.world.start(record)
        return vllm_error(
            503, f"Service Unavailable: endpoint {record.name} is {record.state(now)}, retry later"
        )

    @staticmethod
    def _on_its_way(record: EndpointRecord, now: float) -> bool:
        """Starting, or running with its model still loading: worth holding a request for."""
        return record.state(now) in _STARTING or record.loading(now)

    async def _hold(self, record: EndpointRecord, timeout: float) -> bool:
        """Wait on the clock until the endpoint answers (True), or stops being on its way, or is
        removed, or `timeout` seconds pass (False)."""
        clock = self.world.clock
        deadline = clock.monotonic() + timeout
        while self.world.records.get(record.name) is record and not self.world.closed:
            now = clock.now()
            if record.state(now) == "running" and not record.loading(now):
                return True
            remaining = deadline - clock.monotonic()
            if not self._on_its_way(record, now) or remaining <= 0:
                return False
            ready_at = record.routes_ready_at(now)
            wait = remaining if ready_at is None else min(remaining, ready_at - now)
            await wait_event(clock, record.changed, wait)
        return False

    async def _pace(self, tokens: int) -> None:
        delay = tokens / self.world.config.tokens_per_second
        if delay > 0:
            await self.world.clock.sleep(delay)

    async def _pace_one_token(self) -> None:
        await self._pace(1)


def _serves_embeddings(record: EndpointRecord) -> bool:
    model = record.spec.get("model")
    return isinstance(model, dict) and model.get("task") in _EMBEDDING_TASKS


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
