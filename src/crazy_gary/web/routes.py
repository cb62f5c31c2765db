"""The endpoints REST API (README: REST API): status, wake and sleep, and the health routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from crazy_gary.core.endpoint import Operation
from crazy_gary.core.manager import HuggingFaceEndpointManager, OperationResult
from crazy_gary.core.status import EndpointStatus
from crazy_gary.store.redis import SharedRedis
from crazy_gary.web.auth import Caller, request_id, require
from crazy_gary.web.errors import error_response
from crazy_gary.web.status_cache import StatusCache, matches

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Wait = Annotated[bool, Query(description="Answer only when the operation has finished (or timed out).")]

_WAKE_DONE = {EndpointStatus.RUNNING, EndpointStatus.ERROR}
_SLEEP_DONE = {EndpointStatus.SLEEPING, EndpointStatus.ERROR, EndpointStatus.RUNNING}
_MARGIN = 1.0  # seconds beyond the operation's own timeout, so the manager decides first


def _manager(request: Request) -> HuggingFaceEndpointManager:
    manager: HuggingFaceEndpointManager = request.app.state.manager
    return manager


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, Any]:
    """Liveness: the process answers."""
    return {"success": True, "status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the store answers and every endpoint has been read once (or marked unknown);
    `degraded` (still 200) while a configured Redis cannot be reached."""
    if not await request.app.state.recorder.store.ping():
        return error_response(503, "not_ready", "The store cannot be reached.", {"Retry-After": "5"})
    if _manager(request).ready:
        redis: SharedRedis | None = request.app.state.redis
        if redis is not None and not redis.healthy:
            # still ready: the replica serves from its own state; pulling every replica out of the
            # load balancer because Redis is down would stop the whole service
            return JSONResponse({"success": True, "status": "degraded", "redis": "unreachable"})
        return JSONResponse({"success": True, "status": "ready"})
    return error_response(503, "not_ready", "Endpoint states have not been read yet.", {"Retry-After": "1"})


@router.get("/api/endpoints/status", tags=["endpoints"])
async def all_status(request: Request, caller: Viewer) -> Response:
    """Every endpoint's state; never calls Hugging Face and never counts as activity. Sent with a
    strong `ETag`: `If-None-Match` with it answers 304 while nothing changed."""
    cache: StatusCache = request.app.state.status_cache
    answer = cache.answer()
    headers = {"ETag": answer.etag, "Cache-Control": "no-cache"}
    if matches(request.headers.get("if-none-match"), answer.etag):
        return Response(status_code=304, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)


@router.get("/api/endpoints/status/{model_type}", tags=["endpoints"])
async def one_status(request: Request, model_type: str, caller: Viewer) -> dict[str, Any]:
    """One endpoint's state."""
    manager = _manager(request)
    key = manager.resolve(model_type)
    return {"success": True, "model_type": key, **manager.status(key).to_dict()}


@router.post("/api/endpoints/wake", tags=["endpoints"])
async def wake_all(request: Request, caller: Operator, wait: Wait = False) -> JSONResponse:
    """Wake every managed endpoint."""
    return await _operate_all(request, caller, "wake", wait)


@router.post("/api/endpoints/wake/{model_type}", tags=["endpoints"])
async def wake_one(request: Request, model_type: str, caller: Operator, wait: Wait = False) -> JSONResponse:
    """Wake one endpoint; 202 once accepted, or with `wait=true` 200 when running, 504 at the timeout."""
    return await _operate_one(request, caller, "wake", model_type, wait)


@router.post("/api/endpoints/sleep", tags=["endpoints"])
async def sleep_all(request: Request, caller: Operator, wait: Wait = False) -> JSONResponse:
    """Put every managed endpoint to sleep."""
    return await _operate_all(request, caller, "sleep", wait)


@router.post("/api/endpoints/sleep/{model_type}", tags=["endpoints"])
async def sleep_one(request: Request, model_type: str, caller: Operator, wait: Wait = False) -> JSONResponse:
    """Put one endpoint to sleep (after its requests drain); 202 once accepted."""
    return await _operate_one(request, caller, "sleep", model_type, wait)


def _start(
    manager: HuggingFaceEndpointManager, operation: Operation, key: str, actor: str, request: Request
) -> OperationResult:
    return manager.operate(operation, key, actor=actor, request_id=request_id(request))


async def _finish(
    manager: HuggingFaceEndpointManager, operation: Operation, key: str
) -> tuple[int, dict[str, Any]]:
    """Wait for the operation's end; the status code and the per-endpoint answer."""
    timeout = manager.wake_timeout(key) + _MARGIN
    view = await manager.wait_for(key, _WAKE_DONE if operation == "wake" else _SLEEP_DONE, timeout)
    wanted = EndpointStatus.RUNNING if operation == "wake" else EndpointStatus.SLEEPING
    if view.status is wanted:
        return 200, {"success": True, "status": view.status.value}
    if view.status is EndpointStatus.ERROR and view.timed_out:
        reason = view.error or f"The {operation} of {key} timed out."
        return 504, {
            "success": False,
            "status": view.status.value,
            "error": reason,
            "code": f"{operation}_timeout",
        }
    if view.status is EndpointStatus.ERROR or view.operation is None:
        reason = view.error or f"The {operation} of {key} did not finish."
        return 502, {
            "success": False,
            "status": view.status.value,
            "error": reason,
            "code": f"{operation}_failed",
        }
    reason = f"The {operation} of {key} did not finish within {timeout - _MARGIN:g} seconds."
    return 504, {
        "success": False,
        "status": view.status.value,
        "error": reason,
        "code": f"{operation}_timeout",
    }


async def _operate_one(
    request: Request, caller: Caller, operation: Operation, model_type: str, wait: bool
) -> JSONResponse:
    manager = _manager(request)
    key = manager.resolve(model_type)
    result = _start(manager, operation, key, caller.actor, request)
    if wait:
        status, body = await _finish(manager, operation, key)
        return JSONResponse({**body, "model_type": key}, status_code=status)
    code = 202 if result.started else 200
    return JSONResponse({"success": True, "model_type": key, "status": result.status.value}, status_code=code)


async def _operate_all(request: Request, caller: Caller, operation: Operation, wait: bool) -> JSONResponse:
    manager = _manager(request)
    results = {key: _start(manager, operation, key, caller.actor, request) for key in manager.keys}
    answers: dict[str, dict[str, Any]] = {}
    status = 202 if any(result.started for result in results.values()) else 200
    if wait:
        status = 200
        for key in results:
            code, answers[key] = await _finish(manager, operation, key)
            status = max(status, code)
    else:
        answers = {key: {"success": True, "status": result.status.value} for key, result in results.items()}
    success = all(answer["success"] for answer in answers.values())
    return JSONResponse({"success": success, "results": answers}, status_code=status)
