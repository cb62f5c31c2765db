"""HTTP helpers shared by the simulator's routes: JSON errors, the bearer token, JSON bodies."""

from __future__ import annotations

import json
import logging
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
]

logger = logging.getLogger("crazy_gary.simulator")


def error(status: int, message: str) -> JSONResponse:
    """The simulator's one error shape, `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


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
    response = error(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug in the simulator still answers JSON, never a traceback page."""
    logger.error("simulator error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, f"Internal simulator error: {type(exc).__name__}")
