"""Throughput at a fixed number of connections for a fixed time: wrk when installed, else asyncio.

wrk (C, one thread) is the better load generator: it leaves more of the two cores to the servers under
test. Without it a bounded asyncio generator in this process does the same job, slower, and the table
says which one ran.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench._http import BenchError
from bench._procs import Processes

__all__ = ["LoadResult", "run_load", "wrk_path"]

WRK_INSTALL_HINT = "wrk not found (Debian: apt-get install -y wrk); used the asyncio load generator"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class LoadResult:
    """What one load run measured; latencies in milliseconds."""

    tool: str
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    non_2xx: int = 0
    socket_errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_load(
    procs: Processes,
    host: str,
    port: int,
    request: bytes,
    body: bytes,
    key: str,
    connections: int,
    seconds: float,
    workdir: Path,
    use_wrk: bool,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """POST `body` to /v1/chat/completions over `connections` keep-alive connections for `seconds`.
    `headers` are extra request headers for wrk (`request` already carries them for asyncio)."""
    wrk = wrk_path() if use_wrk else None
    if wrk is not None:
        return _run_wrk(procs, wrk, host, port, body, key, connections, seconds, workdir, headers or {})
    return asyncio.run(_run_asyncio(host, port, request, connections, seconds))


def _lua_script(body: bytes, key: str, headers: Mapping[str, str] | None = None) -> str:
    text = body.decode()
    if "]==]" in text:
        raise BenchError("the request body cannot be quoted for wrk's Lua script")
    extra = {**(headers or {})}
    if any('"' in item or "\\" in item or "\n" in item for item in [*extra, *extra.values()]):
        raise BenchError("a request header cannot be quoted for wrk's Lua script")
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{text}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    ) + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in extra.items())


def _run_wrk(
    procs: Processes,
    wrk: str,
    host: str,
    port: int,
    body: bytes,
    key: str,
    connections: int,
    seconds: float,
    workdir: Path,
    headers: Mapping[str, str],
) -> LoadResult:
    script = workdir / "post.lua"
    script.write_text(_lua_script(body, key, headers), encoding="utf-8")
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "--latency"]
    argv += ["-s", str(script), f"http://{host}:{port}/v1/chat/completions"]
    output = procs.run(argv, timeout=seconds + 30)
    return _parse_wrk(output)


def _parse_wrk(output: str) -> LoadResult:
    result = LoadResult(tool="wrk")
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", output)
    if done is None:
        raise BenchError(f"cannot read wrk's output: {output.strip()[:200]!r}")
    result.requests = int(done[1])
    result.seconds = float(done[2]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done[3]]
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        result.non_2xx = int(non_2xx[1])
    if errors := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        result.socket_errors = sum(int(value) for value in errors.groups())
    for percent, value, unit in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M):
        milliseconds = float(value) * _UNITS[unit]
        if percent == "50":
            result.p50_ms = milliseconds
        else:
            result.p99_ms = milliseconds
    return result


async def _run_asyncio(host: str, port: int, request: bytes, connections: int, seconds: float) -> LoadResult:
    result = LoadResult(tool="python asyncio")
    latencies: list[int] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    async with asyncio.timeout(seconds + 15):
        await asyncio.gather(
            *(_connection_loop(host, port, request, deadline, result, latencies) for _ in range(connections))
        )
    result.seconds = loop.time() - started
    result.requests = len(latencies)
    result.non_2xx = sum(count for status, count in result.statuses.items() if not 200 <= status < 400)
    if latencies:
        latencies.sort()
        result.p50_ms = latencies[len(latencies) // 2] / 1e6
        result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6
    return result


async def _connection_loop(
    host: str, port: int, request: bytes, deadline: float, result: LoadResult, latencies: list[int]
) -> None:
    """Send requests back to back until the deadline; reconnect after a failure."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            result.socket_errors += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while loop.time() < deadline:
                begun = time.perf_counter_ns()
                writer.write(request)
                status = await _read_answer(reader)
                latencies.append(time.perf_counter_ns() - begun)
                result.statuses[status] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.socket_errors += 1
        finally:
            writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lowered.find(b"\r\n", start + 2)
        await reader.readexactly(int(lowered[start + 17 : end]))
        return status
    if b"chunked" in lowered:
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    return status
