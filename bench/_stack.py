"""The system under test: the bench backend and `crazy-gary serve` in front of it, as processes."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._http import BenchError
from bench._procs import Processes, free_port, refused_port, wait_until_ok

__all__ = [
    "HOST",
    "KEY",
    "Gateway",
    "crazy_gary_command",
    "gateway_route_in_source",
    "start_backend",
    "start_gateway",
]

HOST = "127.0.0.1"
KEY = "bench-key-0001"
ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SOURCE = ROOT / "src" / "crazy_gary"
# Unlimited for the benchmark: the default 120/minute per key would answer 429 to nearly all the load.
RATE_LIMIT = "100000000/second"
_STRIPPED = ("CRAZY_GARY_", "HF_BASE_URL_", "HF_ENDPOINTS_API_URL", "HUGGINGFACE_API_KEY")


@dataclass
class Gateway:
    """The `crazy-gary serve` process that the measurements use."""

    child: subprocess.Popen[bytes]
    port: int
    log: Path
    dead_port: socket.socket
    startup_seconds: list[float] = field(default_factory=list)

    @property
    def startup_median(self) -> float:
        return statistics.median(self.startup_seconds)


def gateway_route_in_source() -> bool:
    """Whether the gateway's source mentions the chat route yet (it is being written)."""
    if not PACKAGE_SOURCE.is_dir():
        return False
    return any(
        "chat/completions" in path.read_text(encoding="utf-8", errors="replace")
        for path in PACKAGE_SOURCE.rglob("*.py")
    )


def crazy_gary_command() -> str:
    beside = Path(sys.executable).parent / "crazy-gary"
    if beside.exists():
        return str(beside)
    found = shutil.which("crazy-gary")
    if found is None:
        raise BenchError("no crazy-gary command beside this Python nor on PATH; run `make setup` first")
    return found


def start_backend(procs: Processes, workdir: Path) -> int:
    """Start `python -m bench.backend` on a free port and wait for its /health; the port."""
    port = free_port(HOST)
    log = workdir / "backend.log"
    argv = [sys.executable, "-m", "bench.backend", "--host", HOST, "--port", str(port)]
    child = procs.spawn(argv, {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    wait_until_ok(child, HOST, port, "/health", timeout=15.0, log=log)
    return port


def _write_config(workdir: Path, backend_port: int, dead_port: int) -> Path:
    config = workdir / "crazy-gary.toml"
    backend = f"http://{HOST}:{backend_port}"
    config.write_text(
        "[endpoints.fast]\n"
        f'inference_url = "{backend}"\n'
        'fallback = "backup"\n'
        "[endpoints.backup]\n"
        f'inference_url = "{backend}"\n'
        "[endpoints.dead]\n"
        f'inference_url = "http://{HOST}:{dead_port}"\n'
        'fallback = "fast"\n',
        encoding="utf-8",
    )
    return config


def _environment(config: Path, data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_STRIPPED)}
    env.update(
        HUGGINGFACE_API_KEY="hf_bench",
        CRAZY_GARY_CONFIG=str(config),
        CRAZY_GARY_API_KEYS=f"bench:user:{KEY}",
        CRAZY_GARY_DATA_DIR=str(data_dir),
        CRAZY_GARY_RATE_LIMIT=RATE_LIMIT,
    )
    return env


def start_gateway(procs: Processes, workdir: Path, backend_port: int, runs: int) -> Gateway:
    """Start `crazy-gary serve` `runs` times, timing spawn → first 200 from /healthz each time; keep
    the last one running and wait for its /readyz."""
    dead_port = refused_port(HOST)
    config = _write_config(workdir, backend_port, dead_port.getsockname()[1])
    command = crazy_gary_command()
    startups: list[float] = []
    try:
        for run in range(1, runs + 1):
            port = free_port(HOST)
            log = workdir / f"gateway-{run}.log"
            env = _environment(config, workdir / f"data-{run}")
            argv = [command, "serve", "--no-simulate", "--host", HOST, "--port", str(port)]
            spawned = time.perf_counter()
            child = procs.spawn(argv, env, log)
            startups.append(
                wait_until_ok(child, HOST, port, "/healthz", timeout=30.0, log=log, started=spawned)
            )
            if run < runs:
                procs.stop(child)
        wait_until_ok(child, HOST, port, "/readyz", timeout=30.0, log=log, interval=0.05)
    except BaseException:
        dead_port.close()
        raise
    return Gateway(child=child, port=port, log=log, dead_port=dead_port, startup_seconds=startups)
