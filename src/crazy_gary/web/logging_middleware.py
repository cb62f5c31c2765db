"""One log line per HTTP request, with a request id that every other line of the request carries."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crazy_gary._structlog import structlog
from crazy_gary.clock import Clock, SystemClock
from crazy_gary.inference_requests import API_PATHS
from crazy_gary.logs import get_logger, log_fast

__all__ = ["REQUEST_ID_HEADER", "RequestLogMiddleware"]

REQUEST_ID_HEADER = "X-Request-ID"
_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
_INFERENCE_PATHS = frozenset(API_PATHS.values())
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _incoming_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The caller's `X-Request-ID` when it is a short plain token (it is echoed and logged)."""
    for name, value in headers:
        if name == _ID_HEADER:
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else None
    return None


class _Answer:
    """What the middleware learns of the answer as it passes: its status."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status: int | None = None

    def started(self, message: Message, request_id: bytes) -> Message:
        self.status = int(message["status"])
        headers = [
            (name, value) for name, value in message.get("headers", ()) if bytes(name).lower() != _ID_HEADER
        ]
        headers.append((_ID_HEADER, request_id))
        return {**message, "headers": headers}


class RequestLogMiddleware:
    """Logs each HTTP request once, when its answer ends, on the `crazy_gary.access` logger.

    Fields: request id (the caller's `X-Request-ID` when sane, else a new one; echoed on the answer
    and bound in `structlog.contextvars` meanwhile), method, path without the query string, status,
    duration in ms, client address, the caller's actor once auth ran, and for chat completions who
    served the request and why, as the gateway noted them in the request's state (`served_by`,
    `fallback_reason`; None when nothing served it). Never a header value or a key.
    """

    def __init__(
        self, app: ASGIApp, *, clock: Clock | None = None, logger: str = "crazy_gary.access"
    ) -> None:
        self.app = app
        self.clock = clock or SystemClock()
        self.log = get_logger(logger)
        self._stdlib = logging.getLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope.get("headers", ())) or uuid.uuid4().hex
        raw_id = request_id.encode("latin-1")
        state = scope.setdefault("state", {})  # Starlette keeps request.state here
        answer = _Answer()
        path = scope.get("path", "")
        inference = path in _INFERENCE_PATHS or path.startswith("/endpoints/")

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = answer.started(message, raw_id)
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = self.clock.monotonic()
        failure: str | None = None
        try:
            await self.app(scope, receive, send_logged)
        except Exception as exc:
            failure = type(exc).__name__
            raise
        finally:
            self._log(scope, state, answer, self.clock.monotonic() - started, failure, inference)
            structlog.contextvars.reset_contextvars(**tokens)

    def _log(
        self,
        scope: Scope,
        state: dict[str, Any],
        answer: _Answer,
        duration: float,
        failure: str | None,
        inference: bool,
    ) -> None:
        client = scope.get("client")
        caller = state.get("caller")
        status = answer.status if answer.status is not None or failure is None else 500
        fields: dict[str, Any] = {
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "client": client[0] if client else None,
            "actor": getattr(caller, "actor", None),
        }
        if inference:
            fields["served_by"] = state.get("served_by")
            fields["fallback_reason"] = state.get("fallback_reason")
        if failure is not None:
            self.log.error("request", error=failure, **fields)
        elif status is not None and status >= 500:
            self.log.warning("request", **fields)
        elif not log_fast(self._stdlib, "info", "request", fields):
            self.log.info("request", **fields)
