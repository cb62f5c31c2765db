"""Thousands of streaming chat requests at once over raw asyncio sockets, one connection each.

Each stream is read to `data: [DONE]`; what it records (wall-clock times, `time.time()`, so that
they compare with the readings of another thread) is when its headers came, when its first `data:`
line came (the model's first byte, after any heartbeats of a held stream), who served it, and how
it ended. A semaphore bounds the connections being opened at one moment, not the streams open: a
listen backlog overflowed by ten thousand SYNs at once costs the kernel's one-second SYN retries,
which would measure the backlog rather than the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

__all__ = ["StreamOutcome", "open_streams"]

_CONNECTING_AT_ONCE = 256
_SERVED_BY_HEADER = re.compile(rb"(?im)^x-crazy-gary-served-by:\s*(\S+)")
_SERVED_BY_COMMENT = re.compile(rb": served-by (\S+)")
_TAIL = 64  # bytes kept from the previous read, so a marker split between two reads is still seen


@dataclass
class StreamOutcome:
    """How one stream went; `error` is None when it reached `data: [DONE]` without an error event."""

    sent: float = 0.0
    headers_at: float | None = None
    first_data_at: float | None = None
    done_at: float | None = None
    status: int | None = None
    served_by: str | None = None
    error: str | None = None
    heartbeats: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def _head_of(buffer: bytes, outcome: StreamOutcome) -> int | None:
    """The end of the head in `buffer` (its status and served-by noted), or None when incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end]
    try:
        outcome.status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        outcome.status = 0
    match = _SERVED_BY_HEADER.search(head)
    if match:
        outcome.served_by = match.group(1).decode()
    return end + 4


def _body_seen(window: bytes, outcome: StreamOutcome, now: float) -> bool:
    """Note what `window` (the last bytes of the tail plus a new read) holds; True at the end."""
    if outcome.first_data_at is None and b"data: " in window:
        outcome.first_data_at = now
    match = _SERVED_BY_COMMENT.search(window)
    if match:
        outcome.served_by = match.group(1).decode()
    outcome.heartbeats += window.count(b": waiting for ")
    if b'data: {"error"' in window:
        outcome.error = "error_event"
    if b"data: [DONE]" in window:
        return True
    return outcome.status is not None and outcome.status != 200 and b"\r\n0\r\n\r\n" in window


async def _one_stream(
    host: str, port: int, request: bytes, connecting: asyncio.Semaphore, outcome: StreamOutcome
) -> None:
    async with connecting:
        reader, writer = await asyncio.open_connection(host, port)
    try:
        outcome.sent = time.time()
        writer.write(request)
        buffer = b""
        while outcome.headers_at is None:
            data = await reader.read(65536)
            if not data:
                outcome.error = "closed_before_headers"
                raise ConnectionResetError(outcome.error)
            buffer += data
            body_start = _head_of(buffer, outcome)
            if body_start is not None:
                outcome.headers_at = time.time()
                buffer = buffer[body_start:]
        tail = b""
        while True:
            window = tail + buffer
            if _body_seen(window, outcome, time.time()):
                break
            tail = window[-_TAIL:]
            buffer = await reader.read(65536)
            if not buffer:
                outcome.error = "closed_before_data" if outcome.first_data_at is None else "closed_midway"
                raise ConnectionResetError(outcome.error)
        outcome.done_at = time.time()
        if outcome.status != 200 and outcome.error is None:
            outcome.error = f"status_{outcome.status}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _guarded(stream: Awaitable[None], outcome: StreamOutcome) -> None:
    try:
        await stream
    except TimeoutError:
        outcome.error = outcome.error or "timeout"
    except OSError as exc:
        outcome.error = outcome.error or type(exc).__name__


async def open_streams(
    host: str, port: int, request: bytes, count: int, timeout: float
) -> list[StreamOutcome]:
    """Open `count` streams of `request` at once and read each to its end, `timeout` seconds at most
    in all; one outcome per stream, in the order they were opened."""
    connecting = asyncio.Semaphore(_CONNECTING_AT_ONCE)
    outcomes = [StreamOutcome() for _ in range(count)]
    tasks = [
        asyncio.ensure_future(_one_stream(host, port, request, connecting, outcome)) for outcome in outcomes
    ]
    guarded = [
        _guarded(asyncio.wait_for(task, timeout), outcome)
        for task, outcome in zip(tasks, outcomes, strict=True)
    ]
    await asyncio.gather(*guarded)
    return outcomes
