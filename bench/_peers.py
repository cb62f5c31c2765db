"""The peer gateways a user might pick instead of crazy-gary, measured in the same run against the
same backend with the same client code: LiteLLM's proxy (PyPI) and Portkey's AI gateway (npm).

Each peer is installed on demand (`bench/_peer_install.py`), started `startup_runs` times (spawn →
first 200 from its health route), checked to forward a chat request to the backend, then measured
alone: the same sequential latency and the same load as crazy-gary, then its peak memory, and
stopped before the next. The goal rows compare crazy-gary's figures of this run with the peers'.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench._http import BenchError, Connection, Response
from bench._load import LoadResult, run_load
from bench._measure import chat_body, request_for, sequential
from bench._peer_install import LITELLM_VERSION, PORTKEY_VERSION, ensure_litellm, ensure_portkey
from bench._peer_rows import Ours, PeerResult, PeerSpec, add_peer_rows, figure
from bench._procs import Processes, free_port, memory_kib, wait_until_ok
from bench._report import Report, Row
from bench._stack import HOST
from bench.backend import COMPLETION

__all__ = [
    "LITELLM_KEY",
    "PeerContext",
    "forwarded",
    "litellm_config",
    "measure_peers",
    "portkey_headers",
    "tree_pids",
    "with_headers",
]

T = TypeVar("T")
# LiteLLM's proxy refuses to start without a master key (no database: the key is checked in memory).
LITELLM_KEY = "sk-bench-5f0c2a9e71d84b3c9a6e0d1f2b7c4e88"
PEER_KEY = "bench-key-0001"  # Portkey passes the caller's key on to the backend, which ignores it
STARTUP_TIMEOUT = 180.0
_STRIPPED = ("LITELLM_", "DATABASE_URL", "OPENAI_", "REDIS_", "PORTKEY_", "NODE_OPTIONS")
_PROXIES = ("http_proxy", "https_proxy", "all_proxy")


class PlanLike(Protocol):
    @property
    def requests(self) -> int: ...
    @property
    def warmup(self) -> int: ...
    @property
    def connections(self) -> int: ...
    @property
    def load_seconds(self) -> float: ...
    @property
    def startup_runs(self) -> int: ...


class PeerContext(Protocol):
    """What the peers step reads from the bench's run context."""

    @property
    def plan(self) -> PlanLike: ...
    @property
    def procs(self) -> Processes: ...
    @property
    def workdir(self) -> Path: ...
    @property
    def report(self) -> Report: ...
    @property
    def use_wrk(self) -> bool: ...
    @property
    def backend_port(self) -> int: ...
    @property
    def peers(self) -> bool: ...


def litellm_config(backend_port: int, master_key: str = LITELLM_KEY) -> str:
    """LiteLLM's config.yaml: one model `fast`, the bench backend as an OpenAI-compatible provider."""
    return (
        "model_list:\n"
        "  - model_name: fast\n"
        "    litellm_params:\n"
        "      model: openai/fast\n"
        f"      api_base: http://{HOST}:{backend_port}/v1\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  json_logs: false\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"
        "  disable_spend_logs: true\n"
    )


def portkey_headers(backend_port: int) -> dict[str, str]:
    """Portkey's routing headers: the OpenAI provider, at the bench backend's address."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://{HOST}:{backend_port}/v1"}


def with_headers(request: bytes, headers: Mapping[str, str]) -> bytes:
    """`request` (bytes from build_request) with `headers` added at the end of its head."""
    head_end = request.index(b"\r\n\r\n")
    extra = "".join(f"\r\n{name}: {value}" for name, value in headers.items()).encode("latin-1")
    return request[:head_end] + extra + request[head_end:]


def forwarded(status: int, body: bytes) -> bool:
    """Whether an answer is the bench backend's chat.completion, as a gateway passes it on."""
    if status != 200:
        return False
    try:
        answer: Any = json.loads(body)
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    expected = COMPLETION["choices"][0]["message"]["content"]
    return bool(answer.get("object") == "chat.completion" and content == expected)


def tree_pids(root: int, parents: Mapping[int, int]) -> list[int]:
    """`root` and all its descendants, given each process's parent."""
    found, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in found]
        found += children
        frontier = children
    return found


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def tree_hwm_kib(pid: int) -> int:
    """The sum of VmHWM over a process and its descendants (one figure when it does not fork)."""
    return sum(memory_kib(each).get("VmHWM", 0) for each in tree_pids(pid, _parents()))


def _environment(**values: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_STRIPPED) and name.lower() not in _PROXIES
    }
    return {**env, **values}


def _litellm(ctx: PeerContext) -> PeerSpec:
    command = ensure_litellm()
    config = ctx.workdir / "litellm.yaml"
    config.write_text(litellm_config(ctx.backend_port), encoding="utf-8")

    def argv(port: int) -> list[str]:
        return [
            str(command),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]

    # the local copy of the model price list: no fetch from the network at start-up
    env = _environment(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    return PeerSpec(f"LiteLLM {LITELLM_VERSION}", "LiteLLM", "/health/liveliness", LITELLM_KEY, argv, env)


def _portkey(ctx: PeerContext) -> PeerSpec:
    node, script = ensure_portkey()

    def argv(port: int) -> list[str]:
        return [node, str(script), f"--port={port}", "--headless"]

    env = _environment(NODE_ENV="production")
    headers = portkey_headers(ctx.backend_port)
    return PeerSpec(f"Portkey {PORTKEY_VERSION}", "Portkey", "/", PEER_KEY, argv, env, headers)


def _start(ctx: PeerContext, spec: PeerSpec, startups: list[float]) -> tuple[subprocess.Popen[bytes], int]:
    """Start the peer `startup_runs` times, timing spawn → first 200 of its health route; keep the last."""
    for run in range(1, ctx.plan.startup_runs + 1):
        port = free_port(HOST)
        log = ctx.workdir / f"{spec.short.lower()}-{run}.log"
        spawned = time.perf_counter()
        child = ctx.procs.spawn(spec.argv(port), spec.env, log)
        try:
            took = wait_until_ok(child, HOST, port, spec.health, STARTUP_TIMEOUT, log, spawned, interval=0.01)
        except BaseException:
            ctx.procs.stop(child)  # not left running to take CPU from what comes next
            raise
        startups.append(took)
        if run < ctx.plan.startup_runs:
            ctx.procs.stop(child)
    return child, port


def _request(spec: PeerSpec, port: int) -> bytes:
    return with_headers(request_for(HOST, port, chat_body("fast"), spec.key), spec.headers)


def _probe(spec: PeerSpec, port: int, count: int = 20) -> list[Response]:
    """`count` chat requests; each must be the backend's chat.completion, passed on."""
    answers = []
    with Connection(HOST, port) as connection:
        for _ in range(count):
            answer = connection.exchange(_request(spec, port))
            if not forwarded(answer.status, answer.body):
                raise BenchError(f"not the backend's chat.completion: {answer.describe()}")
            answers.append(answer)
    return answers


def _attempt(report: Report, what: str, measure: Callable[[], T]) -> T | None:
    try:
        return measure()
    except (BenchError, OSError, ValueError) as exc:
        report.note(f"{what}: not measured: {exc}")
        return None


def _overhead_note(report: Report, spec: PeerSpec, answers: list[Response]) -> None:
    """LiteLLM says what it spent on each answer in a header of its own."""
    values = [
        float(a.headers["x-litellm-overhead-duration-ms"])
        for a in answers
        if "x-litellm-overhead-duration-ms" in a.headers
    ]
    if values:
        report.note(
            f"{spec.name}: x-litellm-overhead-duration-ms median {statistics.median(values):.1f} ms "
            f"over {len(values)} sequential requests (its own count of its time per request)"
        )


def _load_note(report: Report, spec: PeerSpec, result: LoadResult) -> None:
    latency = ""
    if result.p50_ms is not None and result.p99_ms is not None:
        latency = f", latency p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms"
    report.note(
        f"load {spec.name} ({result.tool}): {result.requests:,} answers in {result.seconds:.1f} s"
        f"{latency}, {result.non_2xx} not 2xx/3xx, {result.socket_errors} socket errors; "
        f"load average {os.getloadavg()[0]:.2f} after it"
    )
    if result.failures:
        report.note(f"{spec.name}: {result.failures} failed requests under load: its figure is not clean")


def _measure(ctx: PeerContext, spec: PeerSpec) -> PeerResult:
    """Start, check, measure and stop one peer; each failure becomes a note."""
    result, report, plan = PeerResult(spec), ctx.report, ctx.plan
    started = _attempt(report, f"{spec.name} start", lambda: _start(ctx, spec, result.startup))
    if started is None:
        return result
    child, port = started
    try:
        answers = _attempt(report, f"{spec.name} forwarding check", lambda: _probe(spec, port))
        if answers is None:
            return result
        _overhead_note(report, spec, answers)
        request = _request(spec, port)
        result.latency = _attempt(
            report, f"latency {spec.name}",
            lambda: sequential(HOST, port, request, plan.requests, plan.warmup, spec.name),
        )  # fmt: skip
        result.load = _attempt(
            report, f"load {spec.name}",
            lambda: run_load(
                ctx.procs, HOST, port, request, chat_body("fast"), spec.key, plan.connections,
                plan.load_seconds, ctx.workdir, ctx.use_wrk, headers=spec.headers,
            ),
        )  # fmt: skip
        if result.load is not None:
            _load_note(report, spec, result.load)
        result.memory_kib = _attempt(report, f"{spec.name} memory", lambda: tree_hwm_kib(child.pid))
    finally:
        ctx.procs.stop(child)
    return result


def _ours(report: Report) -> Ours:
    """crazy-gary's figures of this run, read from its rows above."""

    def row(prefix: str) -> Row:
        return next((r for r in report.rows if r.measure.startswith(prefix)), Row(prefix))

    latency = row("latency p50,")
    return Ours(
        per_second=figure(row("throughput,").gateway),
        direct_p50_ms=figure(latency.direct),
        added_p50_ms=figure(latency.added),
        startup_s=figure(row("start-up: spawn → /healthz").gateway),
    )


def measure_peers(ctx: PeerContext) -> None:
    """The step of `python -m bench`: LiteLLM, then Portkey, then the rows comparing them."""
    if not ctx.peers:
        ctx.report.note("--no-peers or --direct-only: LiteLLM and Portkey were not measured")
        return
    results: list[PeerResult] = []
    ctx.report.note(
        f"peers: load average {os.getloadavg()[0]:.2f} as they start, right after crazy-gary's load"
    )
    for short, make in (("LiteLLM", _litellm), ("Portkey", _portkey)):
        print(f"bench: peer gateway {short} …", file=sys.stderr, flush=True)
        spec = _attempt(ctx.report, f"{short} install", partial(make, ctx))
        results.append(_measure(ctx, spec) if spec is not None else PeerResult(_missing(short)))
    add_peer_rows(ctx.report, ctx.plan, _ours(ctx.report), results)


def _missing(short: str) -> PeerSpec:
    version = LITELLM_VERSION if short == "LiteLLM" else PORTKEY_VERSION
    health = "/health/liveliness" if short == "LiteLLM" else "/"
    return PeerSpec(f"{short} {version}", short, health, "", lambda port: [], {})
