"""Many clients on the live event stream, one wake: how long the change takes to reach them all, and
what the open streams cost the gateway's memory.

The fleet of `bench._fleet` (1,000 endpoints in `crazy-gary simulate`, `serve` managing them all) is
started afresh, one endpoint is put to sleep, then `clients` connections open
`GET /api/endpoints/events` and read their `snapshot`. Once every one has it, the sleeping endpoint is
woken (`POST /api/endpoints/wake/{key}`): the change is the first event naming it (its `operation`,
`phase: started`). The clients run in the harness on one asyncio loop, raw sockets, reading every
byte as it comes and parsing only what follows the snapshot.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from bench._fleet import VIEWER, start_fleet
from bench._http import BenchError, build_request, fetch
from bench._procs import Processes, memory_kib
from bench._report import Report, Row, mb
from bench._stack import HOST

__all__ = ["EventsResult", "add_events_rows", "measure_one_wake"]

OPERATOR = "bench-operator-0001"
WOKEN = "fleet-0000"
_CONNECT_AT_ONCE = 50  # connections opened together, so the listen backlog never overflows
_SNAPSHOT_TIMEOUT = 180.0  # seconds for every client to have its snapshot
_CHANGE_TIMEOUT = 30.0  # seconds for every client to see the wake
_SLEEP_TIMEOUT = 30.0


@dataclass(frozen=True)
class EventsResult:
    clients: int
    endpoints: int
    snapshot_bytes: int
    snapshots_seconds: float  # first connection → last snapshot read
    wake_to_first: float  # seconds from sending the wake to the first client seeing it
    wake_to_last: float  # … to the last one
    wake_answered: float  # … to the wake's own answer
    rss_idle_kib: int  # serve's resident memory before any stream
    vm_hwm_kib: int  # serve's peak, with every stream open, after the change reached them
    rss_open_kib: int  # serve's resident memory then


class _Client:
    """One event stream, read raw: the snapshot's size, then the moment the change arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = bytearray()
        self.snapshot_bytes = 0
        self.changed_at: float | None = None

    async def read_head_and_snapshot(self) -> None:
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"the event stream answered {head[:80]!r}")
        if b"chunked" not in head.lower():
            raise BenchError("the event stream is not chunked")
        block = await self._next_block()
        if b"event: snapshot" not in block:
            raise BenchError(f"the stream did not start with a snapshot: {block[:80]!r}")
        self.snapshot_bytes = len(block)

    async def _next_block(self) -> bytes:
        """The next SSE block (up to its blank line); chunk-size lines are left in, they do no harm
        to a search for a field."""
        searched = 0
        while True:
            end = self.buffer.find(b"\n\n", max(0, searched - 1))
            if end >= 0:
                block = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return block
            searched = len(self.buffer)
            data = await self.reader.read(262_144)
            if not data:
                raise BenchError("an event stream ended")
            self.buffer += data

    async def wait_for_change(self, key: str) -> None:
        """Read blocks until one is an event about `key`; note when it arrived."""
        while True:
            block = await self._next_block()
            data = _data_of(block)
            if data is not None and data.get("model_type") == key:
                self.changed_at = time.perf_counter()
                return

    def close(self) -> None:
        self.writer.close()


def _data_of(block: bytes) -> dict[str, object] | None:
    lines = [line for line in block.split(b"\n") if line.startswith(b"data: ")]
    if not lines:
        return None
    value = json.loads(b"\n".join(line[6:] for line in lines))
    return value if isinstance(value, dict) else None


async def _open(port: int) -> _Client:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
    writer.write(build_request("GET", HOST, port, "/api/endpoints/events", key=VIEWER))
    client = _Client(reader, writer)
    await client.read_head_and_snapshot()
    return client


async def _wake(port: int, key: str) -> float:
    """Send the wake; the moment its answer's head arrived."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(build_request("POST", HOST, port, f"/api/endpoints/wake/{key}", key=OPERATOR))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 202")):
            raise BenchError(f"the wake answered {head[:80]!r}")
        return time.perf_counter()
    finally:
        writer.close()


@dataclass(frozen=True)
class _Seen:
    snapshot_bytes: int
    snapshots_seconds: float
    wake_to_first: float
    wake_to_last: float
    wake_answered: float
    vm_hwm_kib: int
    rss_open_kib: int


async def _streams_and_wake(port: int, pid: int, clients: int) -> _Seen:
    """Open the streams (each to its snapshot), wake, wait until every one saw it; serve's peak
    memory is read while they are all still open."""
    opened: list[_Client] = []
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_SNAPSHOT_TIMEOUT):
            for first in range(0, clients, _CONNECT_AT_ONCE):
                batch = range(first, min(clients, first + _CONNECT_AT_ONCE))
                opened += await asyncio.gather(*(_open(port) for _ in batch))
        snapshots = time.perf_counter() - started
        waiting = [asyncio.ensure_future(client.wait_for_change(WOKEN)) for client in opened]
        await asyncio.sleep(0)  # every client is reading before the wake goes
        woken_at = time.perf_counter()
        answered_at = await _wake(port, WOKEN)
        async with asyncio.timeout(_CHANGE_TIMEOUT):
            await asyncio.gather(*waiting)
        arrivals = sorted(client.changed_at for client in opened if client.changed_at is not None)
        return _Seen(
            snapshot_bytes=max(client.snapshot_bytes for client in opened),
            snapshots_seconds=snapshots,
            wake_to_first=arrivals[0] - woken_at,
            wake_to_last=arrivals[-1] - woken_at,
            wake_answered=answered_at - woken_at,
            vm_hwm_kib=memory_kib(pid)["VmHWM"],
            rss_open_kib=memory_kib(pid)["VmRSS"],
        )
    except TimeoutError:
        raise BenchError(f"{len(opened)} of {clients} streams open; a step took too long") from None
    finally:
        for client in opened:
            client.close()


def _raise_open_files(wanted: int) -> None:
    """Room for `wanted` sockets here and in serve (a child inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        raise BenchError(f"the open-files limit is below {wanted} (ulimit -n)")


def _put_to_sleep(port: int, key: str) -> None:
    fetch(HOST, port, "POST", f"/api/endpoints/sleep/{key}", key=OPERATOR)
    deadline = time.monotonic() + _SLEEP_TIMEOUT
    while fetch(HOST, port, "GET", f"/api/endpoints/status/{key}", key=VIEWER).json()["status"] != "sleeping":
        if time.monotonic() > deadline:
            raise BenchError(f"{key} was not asleep within {_SLEEP_TIMEOUT:g} s")
        time.sleep(0.2)


def measure_one_wake(procs: Processes, workdir: Path, *, clients: int, endpoints: int = 1000) -> EventsResult:
    _raise_open_files(clients * 2 + 256)
    workdir.mkdir(exist_ok=True)
    keys = f"bench:viewer:{VIEWER},ops:operator:{OPERATOR}"
    # the connection cap well above the streams, whatever the default
    _, port, pid = start_fleet(procs, workdir, endpoints, api_keys=keys, CRAZY_GARY_MAX_CONNECTIONS="4096")
    _put_to_sleep(port, WOKEN)
    idle = memory_kib(pid)["VmRSS"]
    seen = asyncio.run(_streams_and_wake(port, pid, clients))
    return EventsResult(clients=clients, endpoints=endpoints, rss_idle_kib=idle, **vars(seen))


def add_events_rows(report: Report, procs: Processes, workdir: Path, *, quick: bool) -> None:
    """The rows of "N event-stream clients, one wake", with their targets."""
    clients = 100 if quick else 1000
    what = f"{clients:,} event streams, 1,000 endpoints, one wake"
    reach = report.add(Row(f"{what}: wake → last client", target="≤ 0.5 s"))
    memory = report.add(Row(f"{what}: gateway memory (VmHWM)", target="≤ 150 MB"))
    try:
        result = measure_one_wake(procs, workdir / "events", clients=clients)
    except (BenchError, OSError, ValueError) as exc:
        report.note(f"event streams: not measured: {exc}")
        return
    reach.gateway = f"{result.wake_to_last:.3f} s"
    reach.verdict = result.wake_to_last <= 0.5
    memory.gateway = mb(result.vm_hwm_kib)
    memory.verdict = result.vm_hwm_kib * 1024 <= 150_000_000
    report.note(
        f"event streams: {result.clients:,} snapshots of {result.snapshot_bytes / 1000:.0f} kB read in "
        f"{result.snapshots_seconds:.1f} s; the wake reached the first client after "
        f"{result.wake_to_first * 1000:.0f} ms, the last after {result.wake_to_last * 1000:.0f} ms "
        f"(first → last {(result.wake_to_last - result.wake_to_first) * 1000:.0f} ms; the wake's own "
        f"answer after {result.wake_answered * 1000:.0f} ms); serve's "
        f"resident memory before the streams {mb(result.rss_idle_kib)}, with them all open "
        f"{mb(result.rss_open_kib)}"
    )
