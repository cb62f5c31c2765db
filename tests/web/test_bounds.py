"""The bounds below the app, over real loopback sockets: headers capped in size (431) and in time
(408), open connections capped (503), each in the JSON error shape; the server answers throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crazy_gary.web.bounds import bounded_protocol

from ..conftest import serve_app

GET = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n"


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    """A stand-in app: reads the request's body, then answers 200 and a small JSON body."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"success": true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def bounded(
    *, max_header_bytes: int = 65_536, header_timeout: float = 10.0, max_connections: int = 4096
) -> AsyncIterator[tuple[str, int]]:
    protocol = bounded_protocol(max_header_bytes, header_timeout, max_connections)
    async with serve_app(ok_app, http=protocol) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


async def exchange(
    address: tuple[str, int], data: bytes, *, within: float = 10.0
) -> tuple[int, dict[str, Any]]:
    """Send `data` on a new connection; the answer's status and JSON body (read to the end)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=within)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


async def healthy(address: tuple[str, int]) -> bool:
    status, body = await exchange(address, GET + b"connection: close\r\n\r\n")
    return status == 200 and body == {"success": True}


async def test_a_one_megabyte_header_is_431_and_the_server_goes_on() -> None:
    async with bounded() as address:
        big = GET + b"x-big: " + b"a" * 1_048_576 + b"\r\n\r\n"
        status, body = await exchange(address, big)
        assert status == 431
        assert body == {
            "success": False,
            "error": "The request's headers are larger than 65,536 bytes.",
            "code": "headers_too_large",
        }
        assert await healthy(address)


async def test_headers_still_arriving_past_the_limit_are_refused_without_waiting_for_their_end() -> None:
    """A header that grows past the limit in pieces is refused at the piece that crosses it."""
    async with bounded(max_header_bytes=8192) as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(GET + b"x-growing: ")
        for _ in range(3):
            writer.write(b"b" * 4096)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_large_body_is_not_taken_for_large_headers() -> None:
    """Small headers and a 200 KB body in one write: the body is the app's business, not a 431."""
    async with bounded(max_header_bytes=8192) as address:
        body = b"z" * 200_000
        request = b"POST /x HTTP/1.1\r\nhost: h\r\nconnection: close\r\ncontent-length: 200000\r\n\r\n" + body
        status, _ = await exchange(address, request)
        assert status == 200


async def test_two_hundred_half_open_requests_are_closed_at_the_deadline_while_others_are_answered() -> None:
    """200 connections whose headers never finish get 408 and are closed once the deadline passes;
    meanwhile the server answers at once."""
    async with bounded(header_timeout=2.0) as address:
        opened = [await asyncio.open_connection(*address) for _ in range(200)]
        for _, writer in opened:
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: slow")  # never finished
        began = time.monotonic()
        assert await healthy(address)
        answers = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in opened)), timeout=20)
        assert time.monotonic() - began < 20
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
        assert json.loads(answers[0].partition(b"\r\n\r\n")[2])["code"] == "header_timeout"
        for _, writer in opened:
            writer.close()
        assert await healthy(address)


async def test_headers_that_come_slowly_but_in_time_are_served_and_the_connection_kept() -> None:
    """Headers in two pieces a moment apart are served; a second request on the same kept-alive
    connection gets its own deadline and is served too."""
    async with bounded(header_timeout=2.0) as address:
        reader, writer = await asyncio.open_connection(*address)
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)  # the slow client this test is about, not a wait for the server
            writer.write(b"host: h\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(
                next(
                    line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
                ).split(b":")[1]
            )
            await reader.readexactly(length)
        writer.close()


@pytest.mark.parametrize("cap", [3])
async def test_past_the_connection_cap_a_request_gets_503_in_the_error_shape(cap: int) -> None:
    async with bounded(max_connections=cap) as address:
        idle = [await asyncio.open_connection(*address) for _ in range(cap)]
        status, body = await exchange(address, GET + b"\r\n")
        assert status == 503 and body["code"] == "too_many_connections"
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0)  # let the server see them go
        for _ in range(100):
            if await healthy(address):
                break
            await asyncio.sleep(0.01)
        assert await healthy(address)


async def early_answer_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers 413 at once, without reading the body (as the body limit does)."""
    if scope["type"] != "http":
        return
    body = b'{"success": false, "error": "too large", "code": "body_too_large"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_the_rest_of_a_body_answered_early_is_not_taken_for_the_next_requests_headers() -> None:
    """An answer sent before its request's 300 KB body has all come: the body's rest is read as that
    body, not counted as the next request's headers (no 431 after the 413)."""
    protocol = bounded_protocol(8192, 10.0, 4096)
    async with serve_app(early_answer_app, http=protocol) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: h\r\ncontent-length: 300000\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 413 ")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        for _ in range(30):
            writer.write(b"x" * 10_000)
            await writer.drain()
        try:  # nothing more comes (or the connection closes), never a second answer
            more = await asyncio.wait_for(reader.read(65536), timeout=1.0)
        except TimeoutError:
            more = b""
        assert more == b"", more[:40]
        writer.close()
