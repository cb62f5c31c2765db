"""`python -m bench`: crazy-gary's gateway against the same backend reached directly.

Starts `python -m bench.backend` and `crazy-gary serve` (pointed at it) as processes on free loopback
ports, measures each path the same way, prints one table with the targets, and stops every process it
started however the run ends. `--quick` is a smoke run with small counts.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn, TypeVar

from bench._events import add_events_rows
from bench._fleet import add_fleet_rows
from bench._herd import add_herd_rows
from bench._http import BenchError, fetch
from bench._load import WRK_INSTALL_HINT, LoadResult, run_load, wrk_path
from bench._measure import (
    SERVED_BY,
    Sample,
    chat_body,
    fallback_pair,
    request_for,
    sequential,
    stream_first_bytes,
    wait_not_running,
)
from bench._peers import measure_peers
from bench._procs import Processes, memory_kib, tail
from bench._quota import quota_check_ns
from bench._replay import POLICIES, replay_seconds
from bench._report import Report, Row, added_ms, mb, ms, per_second
from bench._stack import HOST, KEY, Gateway, gateway_route_in_source, start_backend, start_gateway

T = TypeVar("T")
MS = 1_000_000  # nanoseconds


@dataclass(frozen=True)
class Plan:
    """Fixed counts and durations of one run."""

    requests: int = 500
    warmup: int = 50
    streams: int = 200
    connections: int = 32
    load_seconds: float = 15.0
    fallback_requests: int = 200
    startup_runs: int = 3
    dead_timeout: float = 30.0


FULL = Plan()
QUICK = Plan(requests=100, warmup=20, streams=50, load_seconds=3.0, fallback_requests=50, startup_runs=1)


@dataclass
class Context:
    plan: Plan
    procs: Processes
    workdir: Path
    report: Report
    use_wrk: bool
    backend_port: int
    gateway: Gateway | None = None
    chat: bool = False  # the gateway answers POST /v1/chat/completions
    peers: bool = True  # measure LiteLLM and Portkey too (bench/_peers.py)

    def attempt(self, what: str, measure: Callable[[], T]) -> T | None:
        """Run one measurement; a failure becomes a note and None, and the run goes on."""
        try:
            return measure()
        except (BenchError, OSError, ValueError) as exc:
            self.report.note(f"{what}: not measured: {exc}")
            return None


def _request(port: int, model: str, stream: bool = False) -> bytes:
    return request_for(HOST, port, chat_body(model, stream), KEY)


def _paths(ctx: Context) -> list[tuple[str, int]]:
    paths = [("direct", ctx.backend_port)]
    if ctx.gateway is not None and ctx.chat:
        paths.append(("through crazy-gary", ctx.gateway.port))
    return paths


def _served_note(ctx: Context, what: str, sample: Sample, expected: str) -> None:
    if set(sample.served_by) != {expected}:
        ctx.report.note(f"{what}: {SERVED_BY} was {sample.served_by}, expected only {expected!r}")


def measure_latency(ctx: Context) -> None:
    plan = ctx.plan
    samples: dict[str, Sample | None] = {}
    for name, port in _paths(ctx):
        request = _request(port, "fast")
        measure = partial(sequential, HOST, port, request, plan.requests, plan.warmup, name)
        samples[name] = ctx.attempt(f"latency {name}", measure)
    direct, gateway = samples.get("direct"), samples.get("through crazy-gary")
    if gateway is not None:
        _served_note(ctx, "latency through crazy-gary", gateway, "fast")
    for quantile, limit in ((0.5, 1.0), (0.99, 3.0)):
        row = ctx.report.add(
            Row(f"latency p{quantile * 100:g}, {plan.requests} sequential", target=f"added ≤ {limit:g} ms")
        )
        if direct is not None:
            row.direct = ms(direct.ms(quantile) * MS)
        if gateway is not None:
            row.gateway = ms(gateway.ms(quantile) * MS)
        if direct is not None and gateway is not None:
            added = (gateway.ms(quantile) - direct.ms(quantile)) * MS
            row.added, row.verdict = added_ms(added), added <= limit * MS


def measure_streams(ctx: Context) -> None:
    plan = ctx.plan
    samples: dict[str, Sample | None] = {}
    for name, port in _paths(ctx):
        request = _request(port, "fast", stream=True)
        measure = partial(stream_first_bytes, HOST, port, request, plan.streams, plan.warmup, name)
        samples[name] = ctx.attempt(f"stream {name}", measure)
    direct, gateway = samples.get("direct"), samples.get("through crazy-gary")
    row = ctx.report.add(Row(f"stream first byte p50, {plan.streams} streams", target="added ≤ 1 ms"))
    if direct is not None:
        row.direct = ms(direct.ms(0.5) * MS)
    if gateway is not None:
        row.gateway = ms(gateway.ms(0.5) * MS)
        _served_note(ctx, "streams through crazy-gary", gateway, "fast")
    if direct is not None and gateway is not None:
        added = (gateway.ms(0.5) - direct.ms(0.5)) * MS
        row.added, row.verdict = added_ms(added), added <= 1.0 * MS


def _load_note(ctx: Context, name: str, result: LoadResult) -> None:
    latency = ""
    if result.p50_ms is not None and result.p99_ms is not None:
        latency = f", latency p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms"
    ctx.report.note(
        f"load {name} ({result.tool}): {result.requests:,} answers in {result.seconds:.1f} s"
        f"{latency}, {result.non_2xx} not 2xx/3xx, {result.socket_errors} socket errors"
    )


def measure_throughput(ctx: Context) -> None:
    plan = ctx.plan
    row = ctx.report.add(
        Row(
            f"throughput, {plan.connections} connections, {plan.load_seconds:g} s",
            target="≥ 1,300 req/s via gateway, no errors",
        )
    )
    for name, port in _paths(ctx):
        load = partial(
            run_load, ctx.procs, HOST, port, _request(port, "fast"), chat_body("fast"), KEY,
            plan.connections, plan.load_seconds, ctx.workdir, ctx.use_wrk,
        )  # fmt: skip
        result = ctx.attempt(f"load {name}", load)
        if result is None:
            continue
        _load_note(ctx, name, result)
        if name == "direct":
            row.direct = per_second(result.per_second)
            if result.per_second < 5000:
                ctx.report.note("the direct backend made less than 5,000 req/s: the machine is busy")
        else:
            row.gateway = per_second(result.per_second)
            row.verdict = result.per_second >= 1300 and result.failures == 0


def measure_fallback(ctx: Context) -> None:
    plan = ctx.plan
    row = ctx.report.add(Row("dead primary → fallback, p50 extra", target="extra ≤ 3 ms"))
    if ctx.gateway is None or not ctx.chat:
        return
    port = ctx.gateway.port
    state = ctx.attempt("dead primary", lambda: wait_not_running(HOST, port, KEY, "dead", plan.dead_timeout))
    if state is None:
        return
    ctx.report.note(f"dead primary: the gateway called it '{state[0]}' after {state[1]:.1f} s of polling")
    pair = ctx.attempt(
        "dead primary",
        lambda: fallback_pair(
            HOST,
            port,
            _request(port, "fast"),
            _request(port, "dead"),
            plan.fallback_requests,
            plan.warmup // 2,
        ),
    )
    if pair is None:
        return
    live, fallen = pair
    _served_note(ctx, "model dead", fallen, "fast")
    ctx.report.note(
        f"dead primary: {plan.fallback_requests} requests each, alternated; "
        f"fallback reasons seen {fallen.reasons or 'none'}"
    )
    row.gateway = f"{ms(fallen.ms(0.5) * MS)} vs fast {ms(live.ms(0.5) * MS)}"
    extra = (fallen.ms(0.5) - live.ms(0.5)) * MS
    row.added, row.verdict = added_ms(extra), extra <= 3.0 * MS


def measure_process(ctx: Context) -> None:
    memory = ctx.report.add(Row("gateway peak memory (VmHWM)", target="≤ 100 MB"))
    startup = ctx.report.add(Row("start-up: spawn → /healthz 200", target="≤ 1 s"))
    if ctx.gateway is None:
        return
    pid = ctx.gateway.child.pid
    figures = ctx.attempt("gateway memory", lambda: memory_kib(pid))
    if figures is not None:
        memory.gateway = mb(figures["VmHWM"])
        memory.verdict = figures["VmHWM"] * 1024 <= 100_000_000
        after = "after the load" if ctx.chat else "idle: no chat route to load"
        ctx.report.note(f"gateway memory {after}: VmHWM {mb(figures['VmHWM'])}, VmRSS {mb(figures['VmRSS'])}")
    seconds = ctx.gateway.startup_seconds
    startup.gateway = f"{ctx.gateway.startup_median:.2f} s"
    startup.verdict = ctx.gateway.startup_median <= 1.0
    if len(seconds) > 1:
        ctx.report.note(
            "start-up runs: " + ", ".join(f"{value:.2f} s" for value in seconds) + " (median shown)"
        )


def measure_quota(ctx: Context) -> None:
    """What a quota check (the reservation before a request goes upstream) costs, in process and in Redis."""
    count = max(200, ctx.plan.requests * 4)
    for where, redis, target in (("in process", False, 0.1), ("Redis", True, 0.5)):
        row = ctx.report.add(Row(f"quota check p50, {where}", target=f"≤ {target} ms"))
        took = ctx.attempt(f"quota check ({where})", lambda redis=redis: quota_check_ns(count, redis=redis))
        if took is None:
            ctx.report.note(f"quota check ({where}): not measured (Redis at 127.0.0.1:6379 not reachable?)")
            continue
        row.gateway = ms(took)
        row.verdict = took <= target * MS


def measure_replay(ctx: Context) -> None:
    """`replay` of a busy week under four policies, against its one-minute target."""
    row = ctx.report.add(Row(f"replay of a week, {len(POLICIES)} policies", target="≤ 60 s"))
    measured = ctx.attempt("replay", lambda: replay_seconds(82.0 if ctx.plan is FULL else 8.0))
    if measured is None:
        return
    count, seconds = measured
    row.measure = f"replay of a week, {count:,} requests, {len(POLICIES)} policies"
    row.gateway = f"{seconds:.1f} s"
    row.verdict = seconds <= 60 if ctx.plan is FULL else None
    ctx.report.note(f"replay policies: {', '.join(POLICIES)} (240 s cold starts)")


def measure_fleet(ctx: Context) -> None:
    """1,000 endpoints in the simulator, 20 clients reading the status (processes of their own)."""
    add_fleet_rows(ctx.report, ctx.procs, ctx.workdir, quick=ctx.plan is not FULL)


def measure_held_streams(ctx: Context) -> None:
    """10,000 streams (1,000 quick) held through a cold start, direct to the simulator and through serve."""
    add_herd_rows(ctx.report, ctx.procs, ctx.workdir, quick=ctx.plan is not FULL)


def measure_events(ctx: Context) -> None:
    """1,000 (quick: 100) clients on the event stream of the 1,000-endpoint fleet, one wake."""
    add_events_rows(ctx.report, ctx.procs, ctx.workdir, quick=ctx.plan is not FULL)


def probe_gateway(ctx: Context) -> None:
    """Does the gateway answer a chat request yet? A note says why not."""
    assert ctx.gateway is not None
    if not gateway_route_in_source():
        ctx.report.note("no gateway route yet (no 'chat/completions' under src/crazy_gary/)")
        return
    port = ctx.gateway.port
    answer = ctx.attempt(
        "gateway probe", lambda: fetch(HOST, port, "POST", "/v1/chat/completions", chat_body("fast"), KEY)
    )
    if answer is None:
        return
    if answer.status != 200:
        ctx.report.note(f"the gateway's chat route did not answer 200: {answer.describe()}")
        return
    ctx.chat = True


def _title(ctx: Context, quick: bool) -> list[str]:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    if ctx.use_wrk and wrk_path():
        tool = f"wrk ({wrk_path()}, 1 thread)"
    else:
        tool = "python asyncio (in this process)"
        if ctx.use_wrk:
            ctx.report.note(WRK_INSTALL_HINT)
    return [
        f"crazy-gary bench, {'quick' if quick else 'full'} run, {datetime.datetime.now():%Y-%m-%d %H:%M}",
        f"{os.cpu_count()} CPUs, load average {load} at start, Python {platform.python_version()}, "
        f"load generator: {tool}",
    ]


def run(ctx: Context, quick: bool, direct_only: bool) -> None:
    ctx.report.title = _title(ctx, quick)
    if direct_only:
        ctx.report.note("--direct-only: crazy-gary was not started")
    else:
        _progress("starting crazy-gary serve")
        ctx.gateway = ctx.attempt(
            "gateway start",
            lambda: start_gateway(ctx.procs, ctx.workdir, ctx.backend_port, ctx.plan.startup_runs),
        )
        if ctx.gateway is not None:
            probe_gateway(ctx)
    for label, step in (
        ("sequential latency", measure_latency),
        ("stream first byte", measure_streams),
        ("dead primary → fallback", measure_fallback),  # before the load: it leaves 32 idle upstream
        ("throughput", measure_throughput),  # connections in the gateway's pool, which slows it
        ("gateway memory and start-up", measure_process),
        ("peer gateways: LiteLLM, Portkey", measure_peers),
        ("quota check", measure_quota),
        ("replay", measure_replay),
        ("1,000 endpoints, 20 status readers", measure_fleet),
        ("held streams through one cold start", measure_held_streams),
        ("event streams, one wake", measure_events),
    ):
        _progress(label)
        step(ctx)
    if ctx.gateway is not None and ctx.gateway.child.poll() is not None:
        code = ctx.gateway.child.returncode
        ctx.report.note(
            f"crazy-gary exited with code {code} during the run; its log:\n{tail(ctx.gateway.log)}"
        )


def _progress(text: str) -> None:
    print(f"bench: {text} …", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts and 3 s of load: a smoke run")
    parser.add_argument(
        "--load", choices=("auto", "wrk", "python"), default="auto",
        help="load generator: wrk when installed (auto), or the asyncio one",
    )  # fmt: skip
    parser.add_argument("--direct-only", action="store_true", help="measure only the backend, no gateway")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer gateways (LiteLLM, Portkey)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every target is met")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load == "wrk" and wrk_path() is None:
        print("error: --load wrk: wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    report = Report()
    try:
        with tempfile.TemporaryDirectory(prefix="crazy-gary-bench-") as tmp, Processes() as procs:
            workdir = Path(tmp)
            _progress("starting the bench backend")
            ctx = Context(
                plan=QUICK if args.quick else FULL, procs=procs, workdir=workdir, report=report,
                use_wrk=args.load != "python", backend_port=start_backend(procs, workdir),
                peers=not (args.no_peers or args.direct_only),
            )  # fmt: skip
            try:
                run(ctx, args.quick, args.direct_only)
            finally:
                if ctx.gateway is not None:
                    ctx.gateway.dead_port.close()
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.render())
    if args.json:
        report.write_json(args.json)
    return 1 if args.strict and not report.all_met else 0


if __name__ == "__main__":
    sys.exit(main())
