"""Bounds at the connection, below the app: a request's headers capped in size and in time, and the
open connections capped (README, "Security at the edge").

uvicorn's httptools protocol bounds none of the first two (its `h11_max_incomplete_event_size` is
for h11 only), and its `limit_concurrency` answers in plain text; so this is uvicorn's own protocol
with the bounds added, each refusal in the JSON error shape:

- headers (request line included) past `max_header_bytes`: 431 `headers_too_large`, closed;
- headers not complete within `header_timeout` seconds of the connection (or of the previous
  answer on a kept-alive one): 408 `header_timeout`, closed;
- a request on a connection past `max_connections` open ones: 503 `too_many_connections`.

And a graceful stop that loses no request on a kept-alive connection. uvicorn closes an idle one the
moment it begins to stop, and one whose answer went out saying keep-alive right after that answer: a
request the client sends on it meanwhile, as it may, meets a closed connection and is never answered.
Here an answer not yet begun says `Connection: close`; an idle connection, and one whose answer had
begun, stays open until nothing is in flight any more (and at least `_DRAIN` seconds), and a request
that arrives on it is answered, with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["bounded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


_LINGER = 1.0  # seconds a refused connection is read (and its bytes dropped) before it is closed
_DRAIN = 1.0  # seconds, at least, an idle connection stays open once the server begins to stop
_DRAIN_CHECK = 0.1  # seconds between two looks at whether anything is still in flight


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop the parser: httptools passes it on as a parser error,
    which uvicorn answers through `send_400_response`, where it becomes the 431."""


def _refusal(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"success": False, "error": message, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status} ".encode()
        + _REASONS[status]
        + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
    )
    return head + body


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app a request past the connection cap gets instead of crazy-gary's."""
    body = json.dumps(
        {
            "success": False,
            "error": "Too many open connections; try again shortly.",
            "code": "too_many_connections",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BoundedProtocol(HttpToolsProtocol):
    max_header_bytes = 65_536
    header_timeout = 10.0
    max_connections = 4096

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._discarding = False
        self._request_complete = True  # the current request's body has all arrived
        self._head_after_request = False  # an answer went before its request's body was all in
        self._stopping = False
        self._drain_timer: asyncio.TimerHandle | None = None
        self._head_begins()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_ends()
        self._drain_ends()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server begins to stop. An answer whose headers are still to go says `Connection:
        close` and ends the connection; one whose headers went already (saying keep-alive) leaves it
        open, as idle ones, until nothing is in flight any more: the client may rightly send its next
        request on it, which is then answered with `Connection: close`."""
        self._stopping = True
        if self._busy() and not self.cycle.response_started:
            self.cycle.keep_alive = False
        elif not self._busy():
            self._drain_begins()

    def _drain_begins(self) -> None:
        self._drain_ends()
        self._drain_timer = self.loop.call_later(_DRAIN, self._close_when_drained)

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _close_when_drained(self) -> None:
        self._drain_timer = None
        if self.transport.is_closing() or self._busy():
            return  # its request's answer closes it
        if (self._in_head and self._raw_head) or self.tasks:  # a request arriving, or any in flight
            self._drain_timer = self.loop.call_later(_DRAIN_CHECK, self._close_when_drained)
            return
        self.transport.close()

    def _drain_ends(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def _head_begins(self) -> None:
        self._in_head, self._raw_head, self._parsed_head = True, 0, 0
        self._head_ends()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_ends(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` and close; what the client still sends meanwhile is read and dropped for
        a moment first (closing on unread bytes sends a reset, which can lose the answer on its way)."""
        self._in_head = False
        self._head_ends()
        if self.transport.is_closing() or self._discarding:
            return
        self.transport.write(_refusal(status, code, message))
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER, self.transport.close)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head:
            seconds = f"{self.header_timeout:g}"
            self._refuse(408, "header_timeout", f"The request's headers did not arrive within {seconds} s.")

    def _too_large(self) -> None:
        limit = f"{self.max_header_bytes:,}"
        self._refuse(431, "headers_too_large", f"The request's headers are larger than {limit} bytes.")

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return  # refused: read only so that the close does not reset the connection
        if self._in_head:
            self._raw_head += len(data)
        super().data_received(data)
        if self._in_head and self._raw_head > self.max_header_bytes:
            self._too_large()  # headers still arriving, already too large: not waited for

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to any parser error, one raised by our callbacks included
        if self._parsed_head > self.max_header_bytes:
            self._too_large()
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head, self._request_complete = 0, False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_complete = True
        if self._head_after_request:
            self._head_after_request = False
            self._head_begins()

    def on_url(self, url: bytes) -> None:
        self._parsed_head += len(url)
        if self._parsed_head > self.max_header_bytes:
            raise _HeadersTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_head += len(name) + len(value) + 4
        if self._parsed_head > self.max_header_bytes:
            raise _HeadersTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_ends()
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
        else:
            own, self.app = self.app, _too_many_connections
            try:
                super().on_headers_complete()
            finally:
                self.app = own
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # answered while stopping: `Connection: close`, then closed

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a request whose headers came already starts now
        super().on_response_complete()
        if pipelined or self.transport.is_closing():
            return
        if self._stopping:
            self._drain_begins()  # an answer begun before the stop, sent without `Connection: close`
        if self._request_complete:
            self._head_begins()  # the next request's headers, on a kept-alive connection
        else:  # answered early (a 413, say): the rest of the body is not the next request's head
            self._head_after_request = True


def bounded_protocol(
    max_header_bytes: int, header_timeout: float, max_connections: int
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these bounds (pass it as `uvicorn.Config(http=...)`)."""
    return type(
        "BoundedHttpToolsProtocol",
        (_BoundedProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "max_connections": max_connections,
        },
    )
