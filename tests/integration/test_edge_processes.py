"""The HTTP edge of a real `crazy-gary serve` process: the management rate limit and the body limit."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import httpx2

from .conftest import OPERATOR_KEY, USER_KEY, VIEWER_KEY, Process, api, sim_calls, start_server

MIB = 1024 * 1024


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


def test_management_limit_and_body_limit_of_a_served_process(simulator: Process) -> None:
    """The 4th wake within 3/minute is a 429 that reaches no one; 30 MiB bodies get 413 and serving goes on."""
    server = start_server(
        simulator, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="3/minute", CRAZY_GARY_RATE_LIMIT="600/minute"
    )
    try:
        for _ in range(3):
            assert api(server, "POST", "/api/endpoints/wake/120b").status_code in (200, 202)
        resumes = sim_calls(simulator)["gpt-oss-120b"]["resume"]
        refused = api(server, "POST", "/api/endpoints/wake/120b")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert sim_calls(simulator)["gpt-oss-120b"]["resume"] == resumes
        entries = api(server, "GET", "/api/endpoints/audit?operation=wake", key=VIEWER_KEY).json()["entries"]
        refusals = [(e["actor"], e["details"]["status"]) for e in entries if e["success"] is False]
        assert refusals == [("ops", 429)]  # the wakes let through are under way (success null) or done

        headers = {"Authorization": f"Bearer {USER_KEY}", "Content-Type": "application/json"}
        url = server.url + "/v1/chat/completions"
        declared = httpx2.post(url, content=b"x" * (30 * MIB), headers=headers, timeout=60)
        chunked = httpx2.post(url, content=_chunks(30 * MIB), headers=headers, timeout=60)
        for response in (declared, chunked):
            assert response.status_code == 413
            assert response.json() == {
                "success": False,
                "error": "The request body is larger than 10485760 bytes.",
                "code": "body_too_large",
            }
        assert "content-length" not in chunked.request.headers
        assert httpx2.get(server.url + "/healthz", timeout=5).status_code == 200
        assert api(server, "GET", "/api/endpoints/status", key=OPERATOR_KEY).status_code == 200
    finally:
        server.stop()


def test_a_served_process_bounds_headers_by_its_settings(simulator: Process) -> None:
    """`serve` takes the header bounds from its settings: headers past 16 KiB get 431 in the error
    shape, a request whose headers never finish gets 408 after a second, and serving goes on."""
    server = start_server(simulator, CRAZY_GARY_MAX_HEADER_BYTES="16384", CRAZY_GARY_HEADER_TIMEOUT="1")
    try:
        address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        with socket.create_connection(address, timeout=10) as big:
            big.sendall(b"GET /healthz HTTP/1.1\r\nhost: h\r\nx-big: " + b"a" * 1_048_576 + b"\r\n\r\n")
            answer = _read_all(big)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "headers_too_large"
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nhost: h")
            assert _read_all(slow).startswith(b"HTTP/1.1 408 ")
        assert httpx2.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def _read_all(sock: socket.socket) -> bytes:
    """What the server sent until it closed the connection (a reset after its answer included)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
