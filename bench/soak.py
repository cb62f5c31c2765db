"""`python -m bench.soak` (`make soak`): a bounded soak test of `crazy-gary serve` (README, "Soak test").

Starts `crazy-gary simulate` and `crazy-gary serve --no-simulate` as processes on free loopback ports,
sends mixed traffic for `SOAK_MINUTES` (default 10) while faults are injected into the simulator, stops
`serve` with SIGTERM part-way and starts it again, and prints every `SOAK_INTERVAL` seconds (default 10)
the requests so far, their outcomes, p99 and serve's memory and open files. The last line is

    soak: N requests, L lost, p99 X ms, memory A -> B MB, open files C -> D

(memory and open files of the last `serve` process, after its warm-up and at the end). It exits 1
when a request was lost. `SOAK_LOGS` names a directory that keeps the processes' logs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench._http import BenchError
from bench._procs import Processes, free_port, memory_kib, tail
from bench._soak_faults import COLD_START, Faults
from bench._soak_outcomes import Outcome, Tally, percentile
from bench._soak_traffic import Traffic
from bench._stack import HOST, crazy_gary_command

__all__ = ["main"]

KEYS = {"user": "soak-user-key-0001", "viewer": "soak-viewer-key-0001", "operator": "soak-ops-key-0001"}
WORKERS = 8
RESTART_AT = 0.4  # of the run: the second `serve` then runs the longer part, warm-up and all
STOP_DEADLINE = 60.0  # seconds a stopping serve may take (its held requests end at once)
START_DEADLINE = 60.0
_STRIPPED = ("CRAZY_GARY_", "HF_", "HUGGINGFACE_API_KEY", "ENDPOINT_")


@dataclass
class Sample:
    """serve's resident memory and open files at a moment of the run."""

    seconds: float
    process: int
    rss_mb: float
    fds: int


@dataclass
class Run:
    """Everything one soak run measured."""

    tally: Tally = field(default_factory=Tally)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the restart, and anything that went wrong
    process: int = 1
    started: float = field(default_factory=time.monotonic)
    serve_started: float = field(default_factory=time.monotonic)


def _environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_STRIPPED)}
    env.update(extra)
    return env


def _serve_environment(simulator_port: int, data_dir: Path) -> dict[str, str]:
    keys = ",".join(f"soak-{role}:{role}:{key}" for role, key in KEYS.items())
    return _environment(
        HUGGINGFACE_API_KEY="hf_simulator",
        HF_ENDPOINTS_API_URL=f"http://{HOST}:{simulator_port}/v2",
        HF_BASE_URL_120B="demo/gpt-oss-120b",
        HF_BASE_URL_20B="demo/gpt-oss-20b",
        CRAZY_GARY_API_KEYS=keys,
        CRAZY_GARY_DATA_DIR=str(data_dir),
        CRAZY_GARY_RATE_LIMIT="100000000/second",
        CRAZY_GARY_MANAGEMENT_RATE_LIMIT="100000000/second",
        CRAZY_GARY_FALLBACK_WAIT="2",
        ENDPOINT_WAKE_TIMEOUT="30",
        ENDPOINT_AUTO_SLEEP="0",
        CRAZY_GARY_POLL_INTERVAL="1",
        CRAZY_GARY_POLL_FAST_INTERVAL="0.2",
    )


async def _answers_200(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _wait_ready(child: subprocess.Popen[bytes], url: str, log: Path, deadline: float) -> None:
    """Until `url` answers 200; fails when the child exits or at `deadline` seconds."""
    ends = time.monotonic() + deadline
    async with aiohttp.ClientSession() as session:
        while not await _answers_200(session, url):
            if child.poll() is not None:
                raise BenchError(f"{url}: the process exited with {child.returncode}; its log:\n{tail(log)}")
            if time.monotonic() > ends:
                raise BenchError(f"{url} did not answer 200 within {deadline:g} s; the log:\n{tail(log)}")
            await asyncio.sleep(0.05)


async def _wait_exit(child: subprocess.Popen[bytes], deadline: float) -> float:
    """Until the child has exited; the seconds it took. Fails at `deadline` seconds."""
    started = time.monotonic()
    while child.poll() is None:
        if time.monotonic() - started > deadline:
            raise BenchError(f"serve did not stop within {deadline:g} s of SIGTERM")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class Stack:
    """The simulator and serve processes of the run, on fixed ports so that serve restarts in place."""

    def __init__(self, procs: Processes, workdir: Path) -> None:
        self.procs = procs
        self.workdir = workdir
        self.simulator_port = free_port(HOST)
        self.serve_port = free_port(HOST)
        self.command = crazy_gary_command()
        self.serve: subprocess.Popen[bytes] | None = None
        self.serve_runs = 0

    @property
    def serve_url(self) -> str:
        return f"http://{HOST}:{self.serve_port}"

    @property
    def simulator_url(self) -> str:
        return f"http://{HOST}:{self.simulator_port}"

    async def start_simulator(self) -> None:
        env = _environment(
            CRAZY_GARY_SIM_COLD_START=str(COLD_START),
            CRAZY_GARY_SIM_TOKENS_PER_SECOND="400",
            CRAZY_GARY_SIM_INITIAL_STATE="running",
        )
        log = self.workdir / "simulator.log"
        argv = [self.command, "simulate", "--host", HOST, "--port", str(self.simulator_port)]
        child = self.procs.spawn(argv, env, log)
        await _wait_ready(child, f"{self.simulator_url}/_sim/calls", log, START_DEADLINE)

    async def start_serve(self) -> int:
        """Start serve (again) and wait for its /readyz; its process id."""
        self.serve_runs += 1
        log = self.workdir / f"serve-{self.serve_runs}.log"
        env = _serve_environment(self.simulator_port, self.workdir / "data")
        argv = [self.command, "serve", "--no-simulate", "--host", HOST, "--port", str(self.serve_port)]
        child = self.procs.spawn(argv, env, log)
        await _wait_ready(child, f"{self.serve_url}/readyz", log, START_DEADLINE)
        self.serve = child  # sampled from now on
        return child.pid

    async def stop_serve(self) -> float:
        """SIGTERM to serve and wait for it to exit; the seconds the stop took."""
        serve, self.serve = self.serve, None  # not sampled while it stops
        assert serve is not None
        serve.send_signal(signal.SIGTERM)
        seconds = await _wait_exit(serve, STOP_DEADLINE)
        self.procs.stop(serve)  # forgets it
        return seconds


def _sample(pid: int, run: Run) -> Sample:
    rss = memory_kib(pid).get("VmRSS", 0) * 1024 / 1e6  # MB of 10⁶ bytes, as bench/ counts them
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(time.monotonic() - run.started, run.process, rss, fds)


def _progress_line(run: Run, sample: Sample | None, since: int, phase: str) -> str:
    tally = run.tally
    recent = tally.latencies_ms[since:]
    where = (
        f"serve#{sample.process} rss {sample.rss_mb:5.1f} MB fds {sample.fds:3d}" if sample else "serve down"
    )
    return (
        f"soak {time.monotonic() - run.started:6.0f} s  {where}  requests {tally.total:6d}"
        f"  answered {tally[Outcome.ANSWERED]}  errors {tally[Outcome.CLEAR_ERROR]}"
        f"  refused {tally[Outcome.REFUSED]}  lost {tally[Outcome.LOST]}"
        f"  p99 {percentile(recent, 0.99):5.0f} ms  [{phase}]"
    )


async def _report_periodically(
    stack: Stack, run: Run, faults: Faults, interval: float, deadline: float
) -> None:
    since = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        sample = None
        if stack.serve is not None and stack.serve.poll() is None:
            try:
                sample = _sample(stack.serve.pid, run)
            except (BenchError, OSError):
                sample = None  # stopping right now
        if sample is not None:
            run.samples.append(sample)
        print(_progress_line(run, sample, since, faults.current), flush=True)
        since = len(run.tally.latencies_ms)


async def _restart(stack: Stack, run: Run, at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    down = time.monotonic()
    print(f"soak {down - run.started:6.0f} s  SIGTERM to serve#{run.process}", flush=True)
    stopped = await stack.stop_serve()
    run.process += 1
    await stack.start_serve()
    run.serve_started = time.monotonic()
    run.notes.append(
        f"SIGTERM took {stopped:.1f} s to stop serve; down {time.monotonic() - down:.1f} s in all"
    )
    print(f"soak: restarted serve ({run.notes[-1]})", flush=True)


def _warm_sample(run: Run, warm_up: float) -> tuple[Sample, Sample]:
    """The last serve's first sample after its warm-up (its first when none is that late), and its last."""
    own = [sample for sample in run.samples if sample.process == run.process]
    if not own:
        raise BenchError("serve's memory was never sampled; the run was too short")
    first = own[0].seconds
    warm = next((sample for sample in own if sample.seconds - first >= warm_up), own[0])
    return warm, own[-1]


def summary(run: Run, warm_up: float) -> list[str]:
    """The closing lines; the last one is the README's."""
    tally = run.tally
    lines = [
        "soak: outcomes "
        + ", ".join(f"{outcome.value} {tally[outcome]}" for outcome in Outcome)
        + f"; p50 {percentile(tally.latencies_ms, 0.5):.0f} ms",
        "soak: kinds " + ", ".join(f"{name} {count}" for name, count in sorted(tally.kinds.items())),
        *(f"soak: {line}" for line in run.notes),
    ]
    if tally.error_reasons:
        errors = ", ".join(f"{reason} {count}" for reason, count in tally.error_reasons.most_common())
        lines.append(f"soak: clear errors {errors}")
    lines += [f"soak: lost {count}x {reason}" for reason, count in tally.lost_reasons.most_common()]
    lines += [f"soak: lost at {at - run.started:.1f} s: {what}" for at, what in tally.lost_log[:20]]
    for process in sorted({sample.process for sample in run.samples}):
        own = [sample for sample in run.samples if sample.process == process]
        lines.append(
            f"soak: serve#{process} rss {own[0].rss_mb:.1f} -> {max(s.rss_mb for s in own):.1f} (peak)"
            f" -> {own[-1].rss_mb:.1f} MB, fds {own[0].fds} -> {max(s.fds for s in own)} (peak) -> {own[-1].fds}"
        )
    warm, last = _warm_sample(run, warm_up)
    lines.append(
        f"soak: {tally.total} requests, {tally[Outcome.LOST]} lost, p99 {percentile(tally.latencies_ms, 0.99):.0f} ms,"
        f" memory {warm.rss_mb:.1f} -> {last.rss_mb:.1f} MB, open files {warm.fds} -> {last.fds}"
    )
    return lines


async def soak(minutes: float, interval: float, workdir: Path) -> Run:
    run = Run()
    seconds = minutes * 60
    with Processes() as procs:
        stack = Stack(procs, workdir)
        await stack.start_simulator()
        await stack.start_serve()
        print(
            f"soak: {minutes:g} min against {stack.serve_url} (simulator {stack.simulator_url})", flush=True
        )
        run.started = run.serve_started = time.monotonic()
        deadline = run.started + seconds
        faults = Faults(stack.simulator_url, seconds=max(10.0, min(30.0, seconds / 8)))
        traffic = Traffic(stack.serve_url, KEYS, run.tally, seed=18)
        async with aiohttp.ClientSession() as control, asyncio.TaskGroup() as group:
            group.create_task(faults.run(control, deadline))
            group.create_task(traffic.run(WORKERS, deadline))
            group.create_task(_restart(stack, run, run.started + seconds * RESTART_AT))
            group.create_task(_report_periodically(stack, run, faults, interval, deadline))
        assert stack.serve is not None
        run.samples.append(_sample(stack.serve.pid, run))
        if faults.failures:
            run.notes.append(f"{faults.failures} fault settings could not be applied (see above)")
    return run


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"error: {name} must be a number of minutes or seconds, not {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"error: {name} must be above 0")
    return value


def main() -> int:
    minutes = _number("SOAK_MINUTES", 10.0)
    interval = _number("SOAK_INTERVAL", 10.0)
    warm_up = min(60.0, minutes * 60 * (1 - RESTART_AT) / 4)
    kept = os.environ.get("SOAK_LOGS", "").strip()  # a directory that keeps the processes' logs
    with tempfile.TemporaryDirectory(prefix="crazy-gary-soak-") as scratch:
        workdir = Path(kept or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            run = asyncio.run(soak(minutes, interval, workdir))
        except BenchError as exc:
            print(f"soak: error: {exc}", file=sys.stderr)
            return 2
        except ExceptionGroup as group:
            failed = group.subgroup(BenchError)
            if failed is None:
                raise
            for error in failed.exceptions:
                print(f"soak: error: {error}", file=sys.stderr)
            return 2
    for line in summary(run, warm_up):
        print(line, flush=True)
    return 1 if run.tally[Outcome.LOST] else 0


if __name__ == "__main__":
    sys.exit(main())
