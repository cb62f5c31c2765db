"""Every error answer in one JSON shape: {"success": false, "error": "<sentence>", "code": "<snake_case>"}.

HTTP status codes are chosen here and nowhere else.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crazy_gary.engine import BadRequest
from crazy_gary.errors import (
    CrazyGaryError,
    EndpointNotFound,
    ManagementError,
    NoCapacity,
    UpstreamError,
)
from crazy_gary.usage.quotas import QuotaExceeded

__all__ = ["ApiError", "error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the web layer answers with a given status, code and sentence."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class _AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error may echo input that is not valid UTF-8."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    body: dict[str, object] = {"success": False, "error": message, "code": code, **extra}
    return _AsciiJSONResponse(body, status_code=status, headers=headers)


def _status_for(exc: CrazyGaryError) -> int:
    if isinstance(exc, BadRequest):
        return 400
    if isinstance(exc, EndpointNotFound):
        return 404
    if isinstance(exc, NoCapacity):
        return 503
    if isinstance(exc, QuotaExceeded):
        return 429
    if isinstance(exc, UpstreamError):
        return 502
    if isinstance(exc, ManagementError):
        return 502
    return 500


_HTTP_CODES = {
    400: ("bad_request", "The request is malformed."),
    401: ("unauthorized", "An API key is required."),
    403: ("forbidden", "The key's role does not allow this."),
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "This route does not accept that method."),
    413: ("body_too_large", "The request body is too large."),
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, ours or the framework's, in the JSON error shape, never with a trace."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(CrazyGaryError)
    async def _domain_error(request: Request, exc: CrazyGaryError) -> JSONResponse:
        headers = None
        if isinstance(exc, NoCapacity):
            headers = {"Retry-After": str(exc.retry_after), "X-Crazy-Gary-Served-By": "none"}
        elif isinstance(exc, QuotaExceeded):
            # x-should-retry: the official OpenAI clients would otherwise ask again at once
            headers = {
                "Retry-After": str(exc.retry_after),
                "X-Crazy-Gary-Served-By": "none",
                "x-should-retry": "false",
            }
        elif isinstance(exc, UpstreamError):
            headers = {"X-Crazy-Gary-Served-By": "none"}
        return error_response(_status_for(exc), exc.code, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "The request failed."))
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}."
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        problem = str(first.get("msg", "invalid value"))
        message = f"Invalid {where}: {problem}." if where else f"Invalid request: {problem}."
        return error_response(400, "invalid_request", message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The one deliberate catch-all: log the type, never send a trace or a message that may hold secrets.
        logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return error_response(500, "internal_error", "Something went wrong inside crazy-gary.")
