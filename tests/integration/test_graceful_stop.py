"""A `serve` process stopped with SIGTERM while kept-alive connections are in use (README, "Soak test"):
what it has begun is answered in full with `Connection: close`, and a request already on its way on an
idle kept-alive connection is answered too, never dropped unanswered."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator

import pytest

from .conftest import USER_KEY, Process, sim_set, start_server, start_simulator, status_of, wait_until

DEADLINE = 20.0


@pytest.fixture
def simulator() -> Iterator[Process]:
    process = start_simulator(CRAZY_GARY_SIM_INITIAL_STATE="running")
    yield process
    process.stop()


def _chat_request(port: int, content: str = "hello", **extra: object) -> bytes:
    body = json.dumps({"model": "20b", "messages": [{"role": "user", "content": content}], **extra}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {USER_KEY}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole answer with a Content-Length body: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection ended before an answer's headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the body was cut after {len(body)} of {length} bytes")
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def _ended(sock: socket.socket) -> bool:
    """True once the server has closed its side (EOF, or a reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def _refuses(port: int) -> bool:
    """True once nothing accepts connections on `port` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _kept_alive(server: Process) -> tuple[socket.socket, int]:
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(_chat_request(port))
    status, headers, _ = _read_answer(sock)
    assert status == 200 and headers.get("connection", "keep-alive") != "close"
    return sock, port


def _exit_code(server: Process) -> int:
    return server.popen.wait(DEADLINE)


def test_request_in_flight_at_sigterm_is_answered_whole_with_connection_close(simulator: Process) -> None:
    """SIGTERM while a request is in flight on a kept-alive connection: the answer arrives complete,
    says `Connection: close`, and the connection is then closed rather than left to drop the next."""
    server = start_server(simulator)
    try:
        sock, port = _kept_alive(server)
        sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=3000)
        sock.sendall(_chat_request(port, "slow"))
        wait_until(lambda: status_of(server, "20b")["in_flight"] == 1, timeout=DEADLINE)
        server.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: _refuses(port), timeout=DEADLINE)  # it stopped accepting: stopping began
        status, headers, body = _read_answer(sock)
        assert status == 200
        assert headers["connection"] == "close"
        assert json.loads(body)["choices"][0]["message"]["content"]
        assert _ended(sock)
        sock.close()
        _exit_code(server)
    finally:
        server.stop()


def test_request_sent_on_idle_connection_as_serve_stops_is_answered(simulator: Process) -> None:
    """A request sent on an idle kept-alive connection once stopping has begun is answered (with
    `Connection: close`), not met by a closed connection."""
    server = start_server(simulator)
    try:
        idle, port = _kept_alive(server)
        busy, _ = _kept_alive(server)
        sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=3000)
        busy.sendall(_chat_request(port, "slow"))  # keeps the server stopping for a while
        wait_until(lambda: status_of(server, "20b")["in_flight"] == 1, timeout=DEADLINE)
        sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=0)
        server.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: _refuses(port), timeout=DEADLINE)
        idle.sendall(_chat_request(port, "late"))
        status, headers, _ = _read_answer(idle)
        assert status == 200
        assert headers["connection"] == "close"
        assert _ended(idle)
        status, headers, _ = _read_answer(busy)
        assert (status, headers["connection"]) == (200, "close")
        for sock in (idle, busy):
            sock.close()
        _exit_code(server)
    finally:
        server.stop()


def test_request_held_for_a_cold_start_gets_a_503_when_serve_stops(simulator: Process) -> None:
    """A request held for a cold start is not kept until the wake timeout, nor cut, by a stop: it is
    answered 503 with `Retry-After` and `Connection: close`, and the process exits."""
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        sim_set(simulator, f"endpoints/{name}", state="scaledToZero", cold_start=600)
    server = start_server(simulator)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        sock.sendall(_chat_request(port))
        wait_until(lambda: status_of(server, "20b")["pending"] == 1, timeout=DEADLINE)
        server.popen.send_signal(signal.SIGTERM)
        status, headers, body = _read_answer(sock)
        assert status == 503
        assert 1 <= int(headers["retry-after"]) <= 5
        assert headers["connection"] == "close"
        assert json.loads(body)["code"] == "no_capacity"
        assert _ended(sock)
        sock.close()
        _exit_code(server)
    finally:
        server.stop()


def _read_chunked_head(sock: socket.socket) -> tuple[dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection ended before the stream's headers"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }, rest


def test_stream_begun_before_sigterm_ends_whole_and_the_next_request_is_answered() -> None:
    """A stream whose headers (saying keep-alive) went out before SIGTERM runs to its end, and the
    connection stays open for the next request the client rightly sends on it: that one is answered,
    with `Connection: close`, rather than met by a closed connection."""
    slow = start_simulator(tokens_per_second=20, CRAZY_GARY_SIM_INITIAL_STATE="running")
    server = start_server(slow)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        sock.sendall(_chat_request(port, "stream", stream=True, max_tokens=40))
        headers, rest = _read_chunked_head(sock)
        assert headers["transfer-encoding"] == "chunked" and "connection" not in headers
        server.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: _refuses(port), timeout=DEADLINE)
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "the stream was cut"
            rest += chunk
        assert b"data: [DONE]" in rest
        sock.sendall(_chat_request(port, "next", max_tokens=4))
        status, headers, _ = _read_answer(sock)
        assert (status, headers["connection"]) == (200, "close")
        assert _ended(sock)
        sock.close()
        _exit_code(server)
    finally:
        server.stop()
        slow.stop()
