"""A tiny blocking HTTP/1.1 client over one keep-alive socket, timed in nanoseconds.

It does the least work a client can do (no header objects, no decoding), so both paths under test,
direct and through crazy-gary, are measured by exactly the same code, and what differs is the server.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["BenchError", "Connection", "Response", "build_request", "fetch", "try_status"]

_RECV_BYTES = 256 * 1024


class BenchError(Exception):
    """A benchmark step could not be measured; the message says why, in one sentence."""


@dataclass(frozen=True)
class Response:
    """One answer: `elapsed_ns` runs from sending the request to its last byte, `first_body_ns` to its
    first body byte (to the end of the head when the body is empty)."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ns: int
    first_body_ns: int

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        """The status and the start of the body, for an error message."""
        text = self.body[:160].decode("utf-8", "replace").replace("\n", " ")
        return f"HTTP {self.status}: {text}"


def build_request(
    method: str, host: str, port: int, path: str, body: bytes = b"", key: str | None = None
) -> bytes:
    """The bytes of one keep-alive request; the same shape for every target."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: crazy-gary-bench"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; `exchange` sends a request and reads its whole answer."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.received_ns = 0
        self.closed_by_peer = False

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        """Receive more bytes; False when the peer has closed the connection."""
        data = self.sock.recv(_RECV_BYTES)
        self.received_ns = time.perf_counter_ns()
        if not data:
            self.closed_by_peer = True
            return False
        self.buffer += data
        return True

    def _fill_or_fail(self) -> None:
        if not self._fill():
            raise BenchError("the server closed the connection in the middle of an answer")

    def exchange(self, request: bytes) -> Response:
        if self.closed_by_peer:
            raise BenchError("the server had closed this keep-alive connection")
        self.buffer.clear()
        started = time.perf_counter_ns()
        self.sock.sendall(request)
        while (head_end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill_or_fail()
        status, headers = _parse_head(bytes(self.buffer[:head_end]))
        del self.buffer[: head_end + 4]
        length = headers.get("content-length")
        has_body = status not in (204, 304) and (length is None or int(length) > 0)
        if has_body and not self.buffer and not self._fill() and length is not None:
            raise BenchError("the server closed the connection before the body")
        first_body_ns = self.received_ns - started
        if not has_body:
            body = b""
        elif length is not None:
            body = self._read_length(int(length))
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = self._read_chunked()
        else:
            while self._fill():
                pass
            body = bytes(self.buffer)
        finished = time.perf_counter_ns()
        if headers.get("connection", "").lower() == "close":
            self.closed_by_peer = True
        return Response(status, headers, body, finished - started, first_body_ns)

    def _read_length(self, length: int) -> bytes:
        while len(self.buffer) < length:
            self._fill_or_fail()
        return bytes(self.buffer[:length])

    def _read_chunked(self) -> bytes:
        body = bytearray()
        position = 0
        while True:
            while (line_end := self.buffer.find(b"\r\n", position)) < 0:
                self._fill_or_fail()
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            data_start = line_end + 2
            if size == 0:  # then no trailer (one empty line) or trailers ending in an empty line
                while not (
                    self.buffer[data_start : data_start + 2] == b"\r\n"
                    or self.buffer.find(b"\r\n\r\n", data_start) >= 0
                ):
                    self._fill_or_fail()
                return bytes(body)
            while len(self.buffer) < data_start + size + 2:
                self._fill_or_fail()
            body += self.buffer[data_start : data_start + size]
            position = data_start + size + 2


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BenchError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def fetch(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    key: str | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request on a connection of its own."""
    with Connection(host, port, timeout) as connection:
        return connection.exchange(build_request(method, host, port, path, body, key))


def try_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    """The status of `GET path`, or None when nothing answers (yet)."""
    try:
        return fetch(host, port, "GET", path, timeout=timeout).status
    except (OSError, BenchError):
        return None
