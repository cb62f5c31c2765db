"""The HTTP edge: request body size, CORS, security headers, and the endpoint name in paths.

Every piece is pure ASGI middleware (or a plain function) built in `create_app` from the settings; the
order they wrap the app in is set there. Rate limits live in `crazy_gary.web.ratelimit`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crazy_gary.web.errors import ApiError, error_response

__all__ = [
    "MODEL_TYPE",
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "HardenedFastAPI",
    "NoSniffMiddleware",
    "add_cors",
    "check_model_type",
    "page_headers",
]

MODEL_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
CORS_METHODS = ("GET", "POST", "OPTIONS")
CORS_HEADERS = ("Authorization", "Content-Type")
# What a script on an allowed origin may read of an answer besides the CORS-safelisted headers.
CORS_EXPOSED = (
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Crazy-Gary-Served-By",
    "X-Crazy-Gary-Fallback-Reason",
    "X-Request-ID",
)
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def check_model_type(request: Request) -> None:
    """400 when the path's `{model_type}` cannot be an endpoint name; a well-formed unknown one is a 404 later."""
    model_type = request.path_params.get("model_type")
    if model_type is not None and not MODEL_TYPE.fullmatch(model_type):
        message = (
            "The endpoint name must start with a letter or digit and hold only letters, digits,"
            " '.', '_', '/' or '-' (at most 128)."
        )
        raise ApiError(400, "invalid_model_type", message)


class BodyTooLarge(HTTPException):
    """The request body passed the limit; raised out of `receive` to stop whoever was reading it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimitMiddleware:
    """413 `body_too_large` for a request body over `max_bytes`, before the body is read whole.

    A `Content-Length` over the limit is refused at once, without calling the app. Otherwise (a chunked
    body) the bytes are counted as the app receives them, and the 413 goes out as soon as the count
    passes the limit; the app's `receive` then raises `BodyTooLarge`, and whatever the app answers
    after that is dropped. The server discards the rest of the body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        started = answered = False

        async def counted_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started and not answered:
                        answered = True
                        await self._too_large(scope, receive, send)
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:  # our 413 went out: the app's own answer to the failed read is dropped
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not answered:  # the answer had begun before the body ran over: nothing left to say
                raise

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes."
        await error_response(413, "body_too_large", message)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server refuses a malformed length itself


class NoSniffMiddleware:
    """`X-Content-Type-Options: nosniff` on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if bytes(k).lower() != _NOSNIFF[0]]
                message = {**message, "headers": [*headers, _NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


class HardenedFastAPI(FastAPI):
    """FastAPI with `NoSniffMiddleware` outside everything, the server-error answer's middleware too."""

    def build_middleware_stack(self) -> ASGIApp:
        return NoSniffMiddleware(super().build_middleware_stack())


def page_headers(page: str) -> dict[str, str]:
    """The security headers of the dashboard page `page` (its HTML).

    The Content-Security-Policy allows the page's own inline `<script>` and `<style>` elements by their
    SHA-256 (computed here, from the page as served, so an edited page stays allowed) and nothing else
    inline: no `'unsafe-inline'`, no inline event handlers or `style` attributes.
    """
    scripts: list[str] = []
    styles: list[str] = []
    for tag, attributes, body in _INLINE.findall(page):
        if tag.lower() == "script" and "src=" in attributes.lower():
            continue
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        (scripts if tag.lower() == "script" else styles).append(f"'sha256-{digest}'")
    policy = [
        "default-src 'self'",
        " ".join(["script-src 'self'", *scripts]),
        " ".join(["style-src 'self'", *styles]),
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
    return {
        "Content-Security-Policy": "; ".join(policy),
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
    }


def add_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer CORS for exactly `origins` (never `*`, never with credentials: keys are bearer headers).

    With no origins nothing is added: the API is same-origin only and no answer carries a CORS header.
    """
    if not origins:
        return
    if "*" in origins:
        raise ValueError("CORS origins must be listed one by one, never '*'")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[origin.lower() for origin in origins],
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        allow_credentials=False,
        expose_headers=CORS_EXPOSED,
    )
