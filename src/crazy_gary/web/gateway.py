"""The OpenAI-compatible gateway (role user): chat completions, completions, the Responses API and
embeddings under `/v1`, `GET /v1/models`, and each endpoint's own address, `/endpoints/{key}/…`."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from crazy_gary.engine import Engine, InferenceRequest
from crazy_gary.inference_requests import API_PATHS, Api
from crazy_gary.usage.quotas import QuotaExceeded, Quotas, reservation_size
from crazy_gary.usage.tokens import TokenCount
from crazy_gary.web.auth import Caller, require
from crazy_gary.web.openapi import add_openapi_paths
from crazy_gary.web.streams import answer_headers, note_served, relayed_answer, stream_answer

__all__ = ["ENDPOINT_ADDRESS", "document_gateway", "router"]

router = APIRouter(tags=["gateway"])
User = Annotated[Caller, Depends(require("user"))]
ENDPOINT_ADDRESS = "/endpoints/"
ADDRESS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# What an endpoint of each Hugging Face task serves through the gateway's OpenAI routes.
_TEXT_APIS = ["chat", "completions", "responses"]
_APIS_BY_TASK = {
    "text-generation": _TEXT_APIS,
    "text2text-generation": _TEXT_APIS,
    "sentence-embeddings": ["embeddings"],
    "feature-extraction": ["embeddings"],
    "sentence-similarity": ["embeddings"],
}


@router.get("/v1/models")
async def models(request: Request, caller: User) -> dict[str, Any]:
    """The configured endpoints as OpenAI models, with their state, their task on Hugging Face, the
    gateway's APIs they serve (all of them when the task is not known) and their own address."""
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
                "task": view.task,
                "apis": _APIS_BY_TASK.get(view.task or "", [*_TEXT_APIS, "embeddings"]),
                "address": f"{ENDPOINT_ADDRESS}{key}",
            }
        )
    return {"object": "list", "data": data}


_require_user = require("user")


async def answer(engine: Engine, inference: InferenceRequest, request: Request) -> Response:
    """Send `inference` along its endpoint's chain and answer with what comes back: a stream held
    with heartbeats when the caller asked for one, an event stream relayed as it comes, or the body."""
    if inference.stream:
        return await stream_answer(engine, inference, request.app.state.clock, request.state)
    exchange = await engine.open(inference)
    note_served(request.state, exchange)
    media_type = exchange.response.headers.get("content-type", "application/json")
    if inference.api == "endpoint" and media_type.startswith("text/event-stream"):
        return relayed_answer(exchange, inference)
    try:
        content = await exchange.aread()
    finally:
        await exchange.aclose()
    return Response(content, exchange.response.status, answer_headers(exchange, inference), media_type)


async def held_quota(request: Request, inference: InferenceRequest) -> InferenceRequest:
    """`inference` with its caller's quota reserved (settled when it ends), when the caller has one;
    a 429 `quota_exceeded` (audited, told as an event) when the quota cannot cover it."""
    quotas: Quotas = request.app.state.quotas
    key = inference.caller
    if key is None or not quotas.applies(key) or inference.body is None:
        return inference  # no quota, or no inference (an endpoint address's GET /health, say)
    size = reservation_size(inference.body, len(inference.raw), request.app.state.settings.quota_reserve)
    try:
        reservation = await quotas.reserve(key, size)
    except QuotaExceeded as exc:
        request.app.state.recorder.refused(
            actor=key, operation=inference.api, model_type=inference.key, status=429, reason=exc.message
        )
        request.app.state.events.quota_exceeded(key, inference.key, exc.window, exc.retry_after)
        raise
    settled = False

    def settle(tokens: TokenCount | None, status: int) -> None:
        nonlocal settled
        if not settled:  # once, whichever way the request ended
            settled = True
            quotas.settle_soon(reservation, tokens, status)

    return dataclasses.replace(inference, on_end=settle)


def _api_route(api: Api) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        caller = await _require_user(request)
        engine: Engine = request.app.state.engine
        inference = engine.parse(await request.body(), api, caller.actor)
        if request.app.state.quotas.limits:  # no coroutine per request where no key has a quota
            inference = await held_quota(request, inference)
        return await answer(engine, inference, request)

    route.__name__ = f"{api}_route"
    return route


async def endpoint_address(request: Request) -> Response:
    """Any request to `/endpoints/{key}/{path}`, sent to `{the serving endpoint's url}/{path}`."""
    caller = await _require_user(request)
    engine: Engine = request.app.state.engine
    scope = request.scope
    raw = scope.get("raw_path")
    raw_path = raw.decode("latin-1") if raw else quote(scope["path"], safe="/:@!$&'()*+,;=~")
    raw_path = raw_path.removeprefix(scope.get("root_path", ""))  # uvicorn's --root-path is in it
    parts = raw_path.split("/", 3)  # "", "endpoints", key, the rest
    inference = engine.parse_endpoint(
        request.path_params["key"],
        request.method,
        parts[3] if len(parts) > 3 else "",
        request.url.query,
        await request.body(),
        request.headers,
        caller.actor,
    )
    return await answer(engine, await held_quota(request, inference), request)


# Plain Starlette routes rather than FastAPI ones: the gateway's hot path skips FastAPI's
# dependency solving and request wrappers, about a seventh of the CPU a forwarded request costs
# (measured through bench/). Each asks for the key itself, with the dependency the other routes use.
for _api, _path in API_PATHS.items():
    router.add_route(_path, _api_route(_api), methods=["POST"], include_in_schema=False)
router.add_route("/endpoints/{key}", endpoint_address, methods=ADDRESS_METHODS, include_in_schema=False)
router.add_route(
    "/endpoints/{key}/{path:path}", endpoint_address, methods=ADDRESS_METHODS, include_in_schema=False
)


_DESCRIPTIONS: dict[Api, tuple[str, str]] = {
    "chat": ("Chat Completions", "OpenAI chat completions, streamed or not."),
    "completions": ("Completions", "OpenAI (legacy) text completions, streamed or not."),
    "responses": ("Responses", "The OpenAI Responses API, streamed (`event:` lines) or not."),
    "embeddings": ("Embeddings", "OpenAI embeddings, of an embedding endpoint."),
}
_ROUTING = (
    " Routed by `model` (an endpoint's key, name or repository): a sleeping endpoint is woken, the"
    " request is held a bounded time, then served by the fallback; `X-Crazy-Gary-Served-By` and"
    " `X-Crazy-Gary-Fallback-Reason` say who served it and why."
)
_ANSWER = {"200": {"description": "The endpoint's answer", "content": {"application/json": {"schema": {}}}}}
_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


def _openapi_paths() -> dict[str, Any]:
    """The gateway's routes in the OpenAPI schema, which FastAPI writes only for its own routes."""
    paths: dict[str, Any] = {}
    for api, path in API_PATHS.items():
        summary, description = _DESCRIPTIONS[api]
        operation = {
            "tags": ["gateway"],
            "summary": summary,
            "description": description + _ROUTING,
            "operationId": f"{api}_{path.strip('/').replace('/', '_')}_post",
            "requestBody": _BODY,
            "responses": _ANSWER,
        }
        paths[path] = {"post": operation}
    key = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    rest = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
    address = {
        method.lower(): {
            "tags": ["gateway"],
            "summary": "An endpoint's own address",
            "description": "Sent to the serving endpoint's URL plus `path` (and the query string), with"
            " `model` in a JSON body set to the name that endpoint expects." + _ROUTING,
            "operationId": f"endpoint_address_{method.lower()}",
            "parameters": [key, rest],
            "responses": _ANSWER,
        }
        for method in ADDRESS_METHODS
    }
    paths["/endpoints/{key}/{path}"] = address
    return paths


def document_gateway(app: FastAPI) -> None:
    """Put the gateway's routes into the app's OpenAPI schema."""
    add_openapi_paths(app, _openapi_paths())
