"""Ten thousand streams held through one cold start: `crazy-gary simulate` as Hugging Face with both
endpoints asleep, then the same streams sent at once straight to the simulator (held there by
`X-Scale-Up-Timeout`, as HF holds them: the baseline) and through `crazy-gary serve --no-simulate`
(120b, fallback 20b). Measured: streams answered, errors by kind, cold starts per endpoint (the
simulator's `/_sim/calls`), serve's peak memory, and how long after the endpoint became ready the
last held stream got its first `data:` line."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

from bench._herd_load import StreamOutcome, open_streams
from bench._http import BenchError, build_request, fetch
from bench._procs import Processes, free_port, memory_kib, wait_until_ok
from bench._report import Report, Row, mb
from bench._stack import HOST, RATE_LIMIT, crazy_gary_command

__all__ = ["HerdResult", "add_herd_rows", "measure_herd"]

TOKEN = "hf_simulator"
USER, VIEWER = "herd-user-0001", "herd-viewer-0001"
NAMES = {"120b": "gpt-oss-120b", "20b": "gpt-oss-20b"}
# A start lasts longer than the herd takes to arrive (about 10-30 s for 10,000 on two cores): once
# every stream is held, the bench makes the endpoint ready itself (`state: running` through the
# simulator's control API, at once), so the release is timed from a known moment.
COLD_START = 120.0
HELD_WITHIN = 90.0  # seconds for the whole herd to be held
MAX_CONCURRENCY = 1000  # of each endpoint, in serve's TOML: a held herd goes out this many at once
STREAM_TIMEOUT = 180.0  # seconds, for the whole herd (held, then answered)
_STRIPPED = ("CRAZY_GARY_", "HF_BASE_URL_", "HF_ENDPOINTS_API_URL", "HUGGINGFACE_API_KEY")


@dataclass
class HerdResult:
    """One herd: its streams' outcomes, when each endpoint became ready (wall clock), cold starts."""

    outcomes: list[StreamOutcome]
    ready_at: dict[str, float]
    starts: dict[str, int]
    vm_hwm_kib: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(1 for o in self.outcomes if o.error is None and o.done_at is not None)

    @property
    def errors(self) -> Counter[str]:
        return Counter(o.error or "unfinished" for o in self.outcomes if o.error or o.done_at is None)

    def release_seconds(self) -> tuple[float, float, int] | None:
        """(last, median) seconds from the serving endpoint's readiness to a held stream's first
        `data:` line, and how many streams were held (sent before it was ready)."""
        delays = []
        for outcome in self.outcomes:
            ready = self.ready_at.get(outcome.served_by or "")
            if ready is not None and outcome.first_data_at is not None and outcome.sent < ready:
                delays.append(outcome.first_data_at - ready)
        if not delays:
            return None
        delays.sort()
        return delays[-1], delays[len(delays) // 2], len(delays)


def _environment(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_STRIPPED)}
    return {**env, **values}


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (children inherit it); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def _starts(sim_port: int) -> dict[str, int]:
    calls = fetch(HOST, sim_port, "GET", "/_sim/calls").json()
    return {key: int(calls[name]["starts"]) for key, name in NAMES.items()}


def _set_state(sim_port: int, name: str, state: str) -> None:
    body = json.dumps({"state": state}).encode()
    answer = fetch(HOST, sim_port, "PUT", f"/_sim/endpoints/{name}", body)
    if answer.status != 200:
        raise BenchError(f"the simulator would not make {name} {state}: {answer.describe()}")


def _put_to_sleep(sim_port: int) -> None:
    for name in NAMES.values():
        _set_state(sim_port, name, "scaledToZero")


def _sim_inference(sim_port: int) -> int:
    """Chat requests the simulator's 120b has received (held or answered)."""
    return int(fetch(HOST, sim_port, "GET", "/_sim/calls").json()[NAMES["120b"]]["inference"])


def _serve_pending(port: int) -> int:
    """Requests serve holds for 120b (or queues there)."""
    view = fetch(HOST, port, "GET", "/api/endpoints/status/120b", key=VIEWER, timeout=30.0).json()
    return int(view.get("pending", 0)) + int(view.get("queued", 0))


def start_simulator(procs: Processes, workdir: Path) -> tuple[int, int]:
    """`crazy-gary simulate` with short cold starts; (port, pid)."""
    port = free_port(HOST)
    log = workdir / "herd-simulator.log"
    env = _environment(CRAZY_GARY_SIM_COLD_START=str(COLD_START))
    child = procs.spawn([crazy_gary_command(), "simulate", "--host", HOST, "--port", str(port)], env, log)
    wait_until_ok(child, HOST, port, "/_sim/calls", timeout=30.0, log=log)
    return port, child.pid


def start_serve(procs: Processes, workdir: Path, sim_port: int, count: int) -> tuple[int, int]:
    """`crazy-gary serve --no-simulate` managing the simulator's two gpt-oss endpoints; (port, pid)."""
    config = workdir / "herd.toml"
    config.write_text(
        f'[endpoints.120b]\nurl = "demo/{NAMES["120b"]}"\nfallback = "20b"\nmax_concurrency = {MAX_CONCURRENCY}\n'
        f'[endpoints.20b]\nurl = "demo/{NAMES["20b"]}"\nmax_concurrency = {MAX_CONCURRENCY}\n',
        encoding="utf-8",
    )
    env = _environment(
        HUGGINGFACE_API_KEY=TOKEN,
        HF_ENDPOINTS_API_URL=f"http://{HOST}:{sim_port}/v2",
        CRAZY_GARY_CONFIG=str(config),
        CRAZY_GARY_API_KEYS=f"herd:user:{USER},watcher:viewer:{VIEWER}",
        CRAZY_GARY_DATA_DIR=str(workdir / "herd-data"),
        CRAZY_GARY_RATE_LIMIT=RATE_LIMIT,
        CRAZY_GARY_MAX_CONNECTIONS=str(count + 512),  # the herd, the poller and room to spare
        CRAZY_GARY_MAX_PENDING=str(count + 512),
    )
    port = free_port(HOST)
    log = workdir / "herd-gateway.log"
    argv = [crazy_gary_command(), "serve", "--no-simulate", "--host", HOST, "--port", str(port)]
    child = procs.spawn(argv, env, log)
    wait_until_ok(child, HOST, port, "/readyz", timeout=60.0, log=log, interval=0.1)
    return port, child.pid


def _serve_states(port: int) -> dict[str, bool]:
    endpoints = fetch(HOST, port, "GET", "/api/endpoints/status", key=VIEWER).json()["endpoints"]
    return {key: view["status"] == "running" for key, view in endpoints.items()}


def _wait_asleep(read: Callable[[], dict[str, bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while any(read().values()):
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: the endpoints were not both asleep within 30 s")
        time.sleep(0.2)


def _request(port: int, path: str, model: str, key: str, extra: str = "") -> bytes:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
        "stream": True,
    }
    request = build_request("POST", HOST, port, path, json.dumps(body).encode(), key)
    head, _, payload = request.partition(b"\r\n\r\n")
    return head + extra.encode() + b"\r\n\r\n" + payload


def _held_or_unknown(held: Callable[[], int]) -> int:
    """`held()`, or -1 when the server is too busy to answer it in time (it is asked again)."""
    try:
        return held()
    except (OSError, BenchError, ValueError, KeyError):
        return -1


def _herd(port: int, sim_port: int, request: bytes, count: int, held: Callable[[], int]) -> HerdResult:
    """Open the herd; once `held()` says all `count` are held, make 120b ready; read every stream
    to its end. The outcomes, the moment 120b was made ready, cold starts, seconds to hold all."""
    before, started = _starts(sim_port), time.monotonic()
    result = HerdResult([], {}, {}, 0, 0.0)

    def release_when_held() -> None:
        deadline = started + HELD_WITHIN
        while _held_or_unknown(held) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        result.seconds = time.monotonic() - started
        result.ready_at["120b"] = time.time()
        _set_state(sim_port, NAMES["120b"], "running")

    releaser = threading.Thread(target=release_when_held, daemon=True)
    releaser.start()
    result.outcomes = _run_client(open_streams(HOST, port, request, count, STREAM_TIMEOUT))
    releaser.join()
    after = _starts(sim_port)
    result.starts = {key: after[key] - before[key] for key in NAMES}
    return result


def _run_client(coroutine: Coroutine[None, None, list[StreamOutcome]]) -> list[StreamOutcome]:
    try:
        import uvloop  # the client's own CPU is taken from the servers on a small machine
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def measure_herd(procs: Processes, workdir: Path, count: int) -> tuple[HerdResult, HerdResult]:
    """The baseline straight to the simulator, then the same herd through crazy-gary."""
    raise_open_files(count * 2 + 1024)
    sim_port, sim_pid = start_simulator(procs, workdir)
    path = f"/endpoints/{NAMES['120b']}/v1/chat/completions"
    direct_request = _request(sim_port, path, "openai/gpt-oss-120b", TOKEN, "\r\nX-Scale-Up-Timeout: 120")
    inference = _sim_inference(sim_port)
    direct = _herd(sim_port, sim_port, direct_request, count, lambda: _sim_inference(sim_port) - inference)
    direct.vm_hwm_kib = memory_kib(sim_pid)["VmHWM"]
    for outcome in direct.outcomes:
        outcome.served_by = "120b"  # the address it was sent to
    _put_to_sleep(sim_port)
    port, pid = start_serve(procs, workdir, sim_port, count)
    _wait_asleep(lambda: _serve_states(port), "serve")
    request = _request(port, "/v1/chat/completions", "120b", USER)
    gateway = _herd(port, sim_port, request, count, lambda: _serve_pending(port))
    gateway.vm_hwm_kib = memory_kib(pid)["VmHWM"]
    return direct, gateway


def _describe_starts(result: HerdResult) -> str:
    return ", ".join(f"{key} {n}" for key, n in result.starts.items() if n) or "none"


def _one_start_each(result: HerdResult) -> bool:
    return all(n <= 1 for n in result.starts.values()) and any(result.starts.values())


def add_herd_rows(
    report: Report, procs: Processes, workdir: Path, *, quick: bool, count: int | None = None
) -> None:
    """The four rows of "N held streams through one cold start" (10,000; 1,000 when quick)."""
    count = count or (1000 if quick else 10_000)
    what = f"{count:,} held streams, one cold start"
    answered = report.add(Row(f"{what}: answered", target="all, no errors"))
    starts = report.add(Row(f"{what}: cold starts", target="one per endpoint woken"))
    release = report.add(Row(f"{what}: last released after ready", target="≤ 10 s"))
    memory = report.add(Row(f"{what}: peak memory (VmHWM)", target="≤ 250 MB via gateway"))
    try:
        direct, gateway = measure_herd(procs, workdir, count)
    except (BenchError, OSError, ValueError) as exc:
        report.note(f"held streams: not measured: {exc}")
        return
    answered.direct, answered.gateway = f"{direct.answered:,}", f"{gateway.answered:,}"
    answered.verdict = gateway.answered == count
    starts.direct, starts.gateway = _describe_starts(direct), _describe_starts(gateway)
    starts.verdict = _one_start_each(gateway)
    times = [result.release_seconds() for result in (direct, gateway)]
    if times[0] is not None:
        release.direct = f"{times[0][0]:.2f} s"
    if times[1] is not None:
        release.gateway = f"{times[1][0]:.2f} s"
        release.verdict = times[1][0] <= 10.0 and times[1][2] > 0
    memory.direct, memory.gateway = mb(direct.vm_hwm_kib), mb(gateway.vm_hwm_kib)
    memory.verdict = gateway.vm_hwm_kib * 1024 <= 250_000_000
    for name, result, timing in (("direct", direct, times[0]), ("through crazy-gary", gateway, times[1])):
        held = f"{timing[2]:,} held, median release {timing[1]:.2f} s" if timing else "none held"
        served = Counter(o.served_by or "?" for o in result.outcomes)
        report.note(
            f"held streams {name}: {held}; served by {dict(served)}; errors {dict(result.errors) or 'none'}; "
            f"all held {result.seconds:.1f} s after the first was sent"
        )


def main() -> None:
    """`python -m bench._herd [COUNT]`: only these rows, e.g. while working on holds."""
    import sys
    import tempfile

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    report = Report()
    with tempfile.TemporaryDirectory(prefix="crazy-gary-herd-") as tmp, Processes() as procs:
        add_herd_rows(report, procs, Path(tmp), quick=True, count=count)
    print(report.render())


if __name__ == "__main__":
    main()
