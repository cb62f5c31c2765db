"""HTTP helpers shared by the simulator's routes: JSON errors, the bearer token, JSON bodies.

The management and control APIs answer errors as `{"error": message}`; everything under an
endpoint's address answers them as vLLM does, `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "base_url",
    "error",
    "handle_http_exception",
    "handle_unexpected",
    "read_json",
    "require_token",
    "vllm_error",
]

_ENDPOINTS_PREFIX = "/endpoints/"

logger = logging.getLogger("crazy_gary.simulator")


def error(status: int, message: str) -> JSONResponse:
    """The simulator's one error shape, `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


def vllm_error(status: int, message: str, error_type: str | None = None) -> JSONResponse:
    """An error in the shape of vLLM's `ErrorResponse`; `error_type` defaults to the status's phrase,
    as vLLM's handler of HTTP errors names it."""
    if error_type is None:
        try:
            error_type = HTTPStatus(status).phrase
        except ValueError:
            error_type = "Error"
    body = {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def _error_for(request: Request, status: int, message: str, error_type: str | None = None) -> JSONResponse:
    if request.url.path.startswith(_ENDPOINTS_PREFIX):
        return vllm_error(status, message, error_type)
    return error(status, message)


def require_token(request: Request, token: str) -> None:
    """Raise 401 unless the request carries `Authorization: Bearer <token>`."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or given.strip() != token:
        raise HTTPException(401, "Invalid credentials in Authorization header")


async def read_json(request: Request) -> Any:
    """The request body as JSON; an empty body is None; anything unparsable raises 400."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"Malformed JSON body: {exc}") from exc


def base_url(request: Request) -> str:
    """The simulator's own address as the client reached it, `scheme://host:port`."""
    return str(request.base_url).rstrip("/")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's HTTPException (ours, and the router's 404/405) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    response = _error_for(request, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug in the simulator still answers JSON, never a traceback page."""
    logger.error("simulator error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_for(request, 500, f"Internal simulator error: {type(exc).__name__}", "InternalServerError")
