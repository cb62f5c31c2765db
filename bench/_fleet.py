"""A big fleet: 1,000 endpoints in `crazy-gary simulate`, `crazy-gary serve` managing them all, and
twenty clients reading `GET /api/endpoints/status` at once: how fast it answers, what it costs the
management API, and the gateway's memory."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._http import BenchError, Connection, build_request, fetch
from bench._procs import Processes, free_port, memory_kib, wait_until_ok
from bench._report import Report, Row, mb
from bench._stack import HOST, RATE_LIMIT, crazy_gary_command

__all__ = ["FleetResult", "add_fleet_rows", "measure_fleet_reads", "start_fleet"]

VIEWER = "bench-viewer-0001"
TOKEN = "hf_simulator"
_MANAGEMENT_KINDS = ("get", "resume", "pause", "scale-to-zero", "update", "delete")
_STRIPPED = ("CRAZY_GARY_", "HF_BASE_URL_", "HF_ENDPOINTS_API_URL", "HUGGINGFACE_API_KEY")


def _environment(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_STRIPPED)}
    return {**env, **values}


@dataclass(frozen=True)
class FleetResult:
    endpoints: int
    clients: int
    reads: int
    seconds: float
    p50_ms: float
    p99_ms: float
    conditional_p50_ms: float
    body_bytes: int
    management_per_second: float
    vm_hwm_kib: int


def _create(port: int, names: list[str]) -> None:
    """Create the endpoints as huggingface_hub would, over one keep-alive connection."""
    with Connection(HOST, port) as connection:
        for name in names:
            body = {
                "name": name,
                "type": "protected",
                "model": {"repository": f"acme/{name}", "framework": "pytorch", "task": "text-generation"},
                "compute": {
                    "accelerator": "gpu",
                    "instanceSize": "x1",
                    "instanceType": "nvidia-l4",
                    # 30 minutes: what serve's default (auto-sleep 15 min + 15) wants, so it changes none
                    "scaling": {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 30},
                },
                "provider": {"vendor": "aws", "region": "us-east-1"},
            }
            request = build_request("POST", HOST, port, "/v2/endpoint/demo", json.dumps(body).encode(), TOKEN)
            answer = connection.exchange(request)
            if answer.status not in (200, 201):
                raise BenchError(f"the simulator refused to create {name}: {answer.describe()}")


def _management_calls(port: int) -> int:
    calls: dict[str, Any] = fetch(HOST, port, "GET", "/_sim/calls").json()
    count = int(calls["_list"])
    for name, counts in calls.items():
        if name != "_list":
            count += sum(int(counts.get(kind, 0)) for kind in _MANAGEMENT_KINDS)
    return count


def start_fleet(
    procs: Processes,
    workdir: Path,
    count: int,
    *,
    api_keys: str = f"bench:viewer:{VIEWER}",
    **env_values: str,
) -> tuple[int, int, int]:
    """The simulator with `count` endpoints and serve managing them, all running; (sim port, serve
    port, serve pid). `api_keys` and `env_values` go to serve's environment."""
    command = crazy_gary_command()
    sim_port, port = free_port(HOST), free_port(HOST)
    sim_env = _environment(CRAZY_GARY_SIM_COLD_START="1")
    sim_log = workdir / "fleet-simulator.log"
    simulator = procs.spawn([command, "simulate", "--host", HOST, "--port", str(sim_port)], sim_env, sim_log)
    wait_until_ok(simulator, HOST, sim_port, "/_sim/calls", timeout=30.0, log=sim_log)
    names = [f"fleet-{index:04d}" for index in range(count)]
    _create(sim_port, names)
    config = workdir / "fleet.toml"
    config.write_text("".join(f'[endpoints.{name}]\nurl = "demo/{name}"\n' for name in names))
    env = _environment(
        HUGGINGFACE_API_KEY=TOKEN,
        HF_ENDPOINTS_API_URL=f"http://{HOST}:{sim_port}/v2",
        CRAZY_GARY_CONFIG=str(config),
        CRAZY_GARY_API_KEYS=api_keys,
        CRAZY_GARY_DATA_DIR=str(workdir / "fleet-data"),
        CRAZY_GARY_RATE_LIMIT=RATE_LIMIT,
        **env_values,
    )
    log = workdir / "fleet-gateway.log"
    serve = procs.spawn([command, "serve", "--no-simulate", "--host", HOST, "--port", str(port)], env, log)
    wait_until_ok(serve, HOST, port, "/readyz", timeout=60.0, log=log, interval=0.1)
    deadline = time.monotonic() + 90
    while True:
        endpoints = fetch(HOST, port, "GET", "/api/endpoints/status", key=VIEWER).json()["endpoints"]
        if len(endpoints) == count and all(e["status"] == "running" for e in endpoints.values()):
            return sim_port, port, serve.pid
        if time.monotonic() > deadline:
            raise BenchError(f"the {count} endpoints were not all running within 90 s")
        time.sleep(0.5)


def _read(port: int, clients: int, seconds: float, conditional: bool) -> tuple[list[int], int]:
    """`clients` threads reading the status for `seconds`, each on its own keep-alive connection;
    every read's nanoseconds and the body's size. With `conditional`, each read sends the tag of
    the previous answer (If-None-Match) and is mostly a 304."""
    plain = build_request("GET", HOST, port, "/api/endpoints/status", key=VIEWER)
    timings: list[list[int]] = [[] for _ in range(clients)]
    sizes = [0] * clients
    failures: list[BaseException] = []
    stop = time.monotonic() + seconds

    def reader(index: int) -> None:
        try:
            read_until_stop(index)
        except (OSError, BenchError) as exc:
            failures.append(exc)

    def read_until_stop(index: int) -> None:
        with Connection(HOST, port) as connection:
            etag = None
            while time.monotonic() < stop:
                request = plain if etag is None else plain[:-2] + f"If-None-Match: {etag}\r\n\r\n".encode()
                answer = connection.exchange(request)
                if answer.status not in (200, 304):
                    raise BenchError(f"the status answered {answer.describe()}")
                timings[index].append(answer.elapsed_ns)
                sizes[index] = max(sizes[index], len(answer.body))
                etag = answer.headers.get("etag") if conditional else None

    threads = [threading.Thread(target=reader, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise BenchError(f"a reader failed: {failures[0]}")
    return [value for per_client in timings for value in per_client], max(sizes)


def measure_fleet_reads(
    procs: Processes, workdir: Path, *, count: int = 1000, clients: int = 20, seconds: float = 10.0
) -> FleetResult:
    """Start the fleet, then twenty plain readers for `seconds` (the figures), then conditional ones."""
    sim_port, port, pid = start_fleet(procs, workdir, count)
    before, started = _management_calls(sim_port), time.monotonic()
    timings, size = _read(port, clients, seconds, conditional=False)
    elapsed = time.monotonic() - started
    calls = _management_calls(sim_port) - before
    conditional, _ = _read(port, clients, min(seconds, 3.0), conditional=True)
    quantiles = statistics.quantiles(timings, n=100)
    return FleetResult(
        endpoints=count,
        clients=clients,
        reads=len(timings),
        seconds=elapsed,
        p50_ms=statistics.median(timings) / 1e6,
        p99_ms=quantiles[98] / 1e6,
        conditional_p50_ms=statistics.median(conditional) / 1e6,
        body_bytes=size,
        management_per_second=calls / elapsed,
        vm_hwm_kib=memory_kib(pid)["VmHWM"],
    )


def add_fleet_rows(report: Report, procs: Processes, workdir: Path, *, quick: bool) -> None:
    """The three rows of "1,000 endpoints, 20 clients reading the status", with their targets."""
    what = "1,000 endpoints, 20 clients reading the status"
    latency = report.add(Row(f"{what}: p50", target="≤ 10 ms"))
    calls = report.add(Row(f"{what}: management calls", target="≤ 1 call/s"))
    memory = report.add(Row(f"{what}: gateway memory (VmHWM)", target="≤ 150 MB"))
    try:
        result = measure_fleet_reads(procs, workdir, seconds=3.0 if quick else 15.0)
    except (BenchError, OSError, ValueError) as exc:
        report.note(f"fleet: not measured: {exc}")
        return
    latency.gateway = f"{result.p50_ms:.2f} ms"
    latency.verdict = result.p50_ms <= 10.0
    calls.gateway = f"{result.management_per_second:.2f} calls/s"
    calls.verdict = result.management_per_second <= 1.0
    memory.gateway = mb(result.vm_hwm_kib)
    memory.verdict = result.vm_hwm_kib * 1024 <= 150_000_000
    report.note(
        f"fleet: {result.reads:,} reads of {result.body_bytes / 1000:.0f} kB in {result.seconds:.1f} s "
        f"by {result.clients} clients back to back (p99 {result.p99_ms:.2f} ms); with If-None-Match "
        f"(304 while nothing changed) p50 {result.conditional_p50_ms:.2f} ms"
    )
