"""The sequential measurements: request latency, stream first byte, and fallback cost.

Each runs a warm-up, then a fixed number of requests back to back on one keep-alive connection, and
checks every answer (status 200, and who served it when the gateway says so).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from bench._http import BenchError, Connection, Response, build_request, fetch

__all__ = [
    "FALLBACK_REASON",
    "SERVED_BY",
    "Sample",
    "chat_body",
    "fallback_pair",
    "percentile",
    "request_for",
    "sequential",
    "stream_first_bytes",
    "wait_not_running",
]

SERVED_BY = "x-crazy-gary-served-by"
FALLBACK_REASON = "x-crazy-gary-fallback-reason"


@dataclass
class Sample:
    """Timings in nanoseconds, plus who served the answers (header values seen, with counts)."""

    values: list[int] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, response: Response) -> None:
        served = response.headers.get(SERVED_BY, "(none)")
        self.served_by[served] = self.served_by.get(served, 0) + 1
        if reason := response.headers.get(FALLBACK_REASON):
            self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def ms(self, quantile: float) -> float:
        return percentile(self.values, quantile) / 1e6


def percentile(values: list[int], quantile: float) -> float:
    """Nearest-rank percentile (p99 of 500 values is the 495th smallest)."""
    if not values:
        raise BenchError("no values to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return float(ordered[rank - 1])


def chat_body(model: str, stream: bool = False) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def _checked(response: Response, what: str) -> Response:
    if response.status != 200:
        raise BenchError(f"{what}: {response.describe()}")
    return response


def sequential(host: str, port: int, request: bytes, count: int, warmup: int, what: str) -> Sample:
    """Latency of `count` requests, one after the other on one connection, after `warmup` more."""
    sample = Sample()
    with Connection(host, port) as connection:
        for _ in range(warmup):
            _checked(connection.exchange(request), what)
        for _ in range(count):
            response = _checked(connection.exchange(request), what)
            sample.values.append(response.elapsed_ns)
            sample.note(response)
    return sample


def stream_first_bytes(host: str, port: int, request: bytes, count: int, warmup: int, what: str) -> Sample:
    """Time to the first body byte of `count` streams (each read to its end before the next)."""
    sample = Sample()
    with Connection(host, port) as connection:
        for index in range(warmup + count):
            response = _checked(connection.exchange(request), what)
            if not response.body.rstrip().endswith(b"data: [DONE]"):
                raise BenchError(f"{what}: the stream did not end with 'data: [DONE]'")
            if index >= warmup:
                sample.values.append(response.first_body_ns)
                sample.note(response)
    return sample


def fallback_pair(
    host: str, port: int, primary: bytes, dead: bytes, count: int, warmup: int
) -> tuple[Sample, Sample]:
    """Requests for a live endpoint and for a dead primary with that fallback, alternated on one
    connection so both see the same conditions; the dead ones must be answered by the fallback."""
    live_sample, dead_sample = Sample(), Sample()
    with Connection(host, port) as connection:
        for index in range(warmup + count):
            live = _checked(connection.exchange(primary), "live endpoint through the gateway")
            fallen = _checked(connection.exchange(dead), "dead primary through the gateway")
            if index >= warmup:
                live_sample.values.append(live.elapsed_ns)
                live_sample.note(live)
                dead_sample.values.append(fallen.elapsed_ns)
                dead_sample.note(fallen)
    return live_sample, dead_sample


def wait_not_running(host: str, port: int, key: str, endpoint: str, timeout: float) -> tuple[str, float]:
    """Poll the gateway until it no longer counts `endpoint` as running; its status and the seconds."""
    started = time.perf_counter()
    path = f"/api/endpoints/status/{endpoint}"
    while True:
        response = fetch(host, port, "GET", path, key=key)
        if response.status != 200:
            raise BenchError(f"GET {path}: {response.describe()}")
        status = str(response.json().get("status"))
        waited = time.perf_counter() - started
        if status != "running":
            return status, waited
        if waited > timeout:
            raise BenchError(f"{endpoint} still counts as running after {timeout:g} s")
        time.sleep(0.2)


def request_for(host: str, port: int, body: bytes, key: str) -> bytes:
    return build_request("POST", host, port, "/v1/chat/completions", body, key)
