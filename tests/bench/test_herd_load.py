"""The held-streams bench's client: what it reads from a stream over a real loopback socket, and
how the release time is counted."""

from __future__ import annotations

import asyncio

from bench._herd import HerdResult
from bench._herd_load import StreamOutcome, open_streams

HELD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-crazy-gary-served-by: pending\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
    b"16\r\n: waiting for 120b\n\n\r\n"
    b"15\r\n: served-by 120b\n\n\r\n"
    b"c\r\ndata: {}\n\n\r\n"
    b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
)
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"


async def _serve(answer: bytes, count: int) -> list[StreamOutcome]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await open_streams("127.0.0.1", port, b"POST / HTTP/1.1\r\n\r\n", count, timeout=10)


def test_a_held_stream_is_read_to_its_end_with_who_served_it() -> None:
    """Heartbeats before the first `data:` line, `: served-by` naming the endpoint, then `[DONE]`."""
    outcomes = asyncio.run(_serve(HELD, 3))
    assert [o.error for o in outcomes] == [None, None, None]
    for outcome in outcomes:
        assert outcome.status == 200 and outcome.served_by == "120b" and outcome.heartbeats == 1
        assert outcome.headers_at is not None and outcome.first_data_at is not None
        assert outcome.done_at is not None and outcome.sent <= outcome.first_data_at


def test_a_refusal_and_a_closed_connection_are_errors_by_kind() -> None:
    """A 503 ends as `status_503`; a connection closed before any data as `closed_before_data`."""
    assert asyncio.run(_serve(REFUSED, 1))[0].error == "status_503"
    assert asyncio.run(_serve(HELD[: HELD.index(b"c\r\ndata")], 1))[0].error == "closed_before_data"


def test_the_release_is_counted_for_held_streams_only_from_their_endpoints_readiness() -> None:
    """A stream sent after the endpoint was ready is not a held one; the last and median delays."""
    held = [StreamOutcome(sent=1.0, first_data_at=at, served_by="120b") for at in (10.5, 11.0, 13.0)]
    late = StreamOutcome(sent=20.0, first_data_at=40.0, served_by="120b")
    result = HerdResult([*held, late], {"120b": 10.0}, {"120b": 1}, 0, 0.0)
    assert result.release_seconds() == (3.0, 1.0, 3)
