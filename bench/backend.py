"""A minimal, fast OpenAI-compatible backend for the benchmarks: `python -m bench.backend --port N`.

Plain asyncio `Protocol`, HTTP/1.1 with keep-alive and pipelining, every answer prebuilt as bytes, so
the backend costs as little as possible and what the benchmarks see is the client and the gateway.

- `POST /v1/chat/completions`: a fixed chat.completion (with `usage` and `message.reasoning`); with
  `"stream": true` in the body, a chunked SSE stream of 10 `data: {chunk}` lines and `data: [DONE]`.
- `GET /health`: 200, empty body (as vLLM). `GET /v1/models`: one model.

Request bodies are framed by Content-Length and read whole before the answer; a chunked request body
gets 411 and the connection is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import socket
from typing import Any

__all__ = ["COMPLETION", "MODEL", "STREAM_EVENTS", "BackendProtocol", "main", "serve"]

MODEL = "bench-model"
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_CREATED = 1_700_000_000
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-bench-0001",
    "object": "chat.completion",
    "created": _CREATED,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from the bench backend.",
                "reasoning": "The user greets; answer briefly.",
                "tool_calls": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench-0001",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body, separators=(",", ":"))


_WORDS = ["Hello", " from", " the", " bench", " backend", "."]
STREAM_EVENTS: list[str] = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning": "The user greets;"}),
    _chunk({"reasoning": " answer briefly."}),
    *(_chunk({"content": word}) for word in _WORDS),
    _chunk({}, finish="stop", usage=COMPLETION["usage"]),
    "[DONE]",
]
MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": MODEL, "object": "model", "created": _CREATED, "owned_by": "bench", "max_model_len": 8192}
    ],
}


def _answer(status: str, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nserver: bench-backend\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
    )
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + body


def _stream_answer(events: list[str]) -> bytes:
    parts = [
        b"HTTP/1.1 200 OK\r\nserver: bench-backend\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    ]
    for event in events:
        data = f"data: {event}\n\n".encode()
        parts.append(b"%x\r\n%s\r\n" % (len(data), data))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _error(status: str, message: str, close: bool = False) -> bytes:
    body = json.dumps({"object": "error", "message": message, "code": int(status.split()[0])})
    return _answer(status, body.encode(), close=close)


_COMPLETION_ANSWER = _answer("200 OK", json.dumps(COMPLETION, separators=(",", ":")).encode())
_STREAM_ANSWER = _stream_answer(STREAM_EVENTS)
_HEALTH_ANSWER = _answer("200 OK", b"", content_type="text/plain")
_MODELS_ANSWER = _answer("200 OK", json.dumps(MODELS, separators=(",", ":")).encode())
_NOT_FOUND = _error("404 Not Found", "no such route")
_NOT_ALLOWED = _error("405 Method Not Allowed", "method not allowed")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ROUTES: dict[bytes, tuple[bytes, bytes]] = {
    b"/v1/chat/completions": (b"POST", _COMPLETION_ANSWER),
    b"/health": (b"GET", _HEALTH_ANSWER),
    b"/v1/models": (b"GET", _MODELS_ANSWER),
}


def _header_value(lowered_head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (given as b'\\r\\nname:') in a lower-cased request head."""
    start = lowered_head.find(name)
    if start < 0:
        return None
    start += len(name)
    end = lowered_head.find(b"\r\n", start)
    return lowered_head[start : end if end >= 0 else None].strip()


def route(method: bytes, target: bytes, body: bytes) -> bytes:
    """The prebuilt answer for one complete request."""
    path = target.split(b"?", 1)[0]
    entry = _ROUTES.get(path)
    if entry is None:
        return _NOT_FOUND
    if method != entry[0] and not (method == b"HEAD" and entry[0] == b"GET"):
        return _NOT_ALLOWED
    if entry[1] is _COMPLETION_ANSWER and _STREAM_FLAG.search(body):
        return _STREAM_ANSWER
    return entry[1]


class BackendProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parse complete requests from the buffer, answer each in order."""

    __slots__ = ("buffer", "continued", "transport")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.continued = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._answer_one():
            pass

    def _close_with(self, answer: bytes) -> bool:
        if self.transport is not None:
            self.transport.write(answer)
            self.transport.close()
        self.buffer.clear()
        return False

    def _answer_one(self) -> bool:
        """Answer the first request of the buffer if it is complete; True when another may follow."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                return self._close_with(_error("431 Request Header Fields Too Large", "head too large", True))
            return False
        head = bytes(buffer[:end])
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return self._close_with(_error("400 Bad Request", "bad request line", True))
        method, target, version = parts
        lowered = head.lower()
        if _header_value(lowered, b"\r\ntransfer-encoding:") is not None:
            return self._close_with(_error("411 Length Required", "send a content-length body", True))
        length_text = _header_value(lowered, b"\r\ncontent-length:")
        length = int(length_text) if length_text and length_text.isdigit() else 0
        if length > MAX_BODY_BYTES:
            return self._close_with(_error("413 Content Too Large", "body too large", True))
        total = end + 4 + length
        if len(buffer) < total:
            if not self.continued and _header_value(lowered, b"\r\nexpect:") == b"100-continue":
                self.continued = True
                assert self.transport is not None
                self.transport.write(_CONTINUE)
            return False
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        self.continued = False
        connection = _header_value(lowered, b"\r\nconnection:")
        keep_alive = connection != b"close" if version == b"HTTP/1.1" else connection == b"keep-alive"
        answer = route(method, target, body)
        if method == b"HEAD":
            answer = answer[: answer.find(b"\r\n\r\n") + 4]
        if not keep_alive:
            return self._close_with(answer)
        assert self.transport is not None
        self.transport.write(answer)
        return True


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; prints one line with the address once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BackendProtocol, host, port, reuse_address=True, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(f"bench backend listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backend", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port (printed)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
