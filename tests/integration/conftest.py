"""Separate processes over loopback: `crazy-gary simulate`, `crazy-gary serve --no-simulate`, the CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis

OPERATOR_KEY = "ops-key-integration"
USER_KEY = "user-key-integration"
VIEWER_KEY = "viewer-key-integration"
BIN = Path(sys.executable).parent / "crazy-gary"
REDIS = "redis://127.0.0.1:6379/0"


def data_dir() -> str:
    """A fresh data dir for a process (never the home's store), removed when the test run ends
    (at exit rather than by a fixture: the browser tests make them through these helpers too)."""
    path = tempfile.mkdtemp(prefix="crazy-gary-test-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (for processes we do not own the clock of)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except httpx2.TransportError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Process:
    """A crazy-gary process we started; stopped (and its output kept) at the end of the test."""

    popen: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)

    def stop(self) -> str:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        out = self.popen.stdout.read() if self.popen.stdout else ""
        return out


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRAZY_GARY", "HF_", "HUGGINGFACE", "ENDPOINT_"))
    }
    env.update(extra)
    if "CRAZY_GARY_DATA_DIR" not in env:
        env["CRAZY_GARY_DATA_DIR"] = data_dir()
    return env


def start(args: list[str], env: dict[str, str], url: str, ready_path: str) -> Process:
    popen = subprocess.Popen(
        [str(BIN), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    process = Process(popen, url)

    def ready() -> bool:
        if popen.poll() is not None:
            raise AssertionError(f"{args[0]} exited early: {popen.stdout.read() if popen.stdout else ''}")
        return httpx2.get(url + ready_path, timeout=1).status_code == 200

    try:
        wait_until(ready, timeout=30)
    except BaseException:
        process.stop()
        raise
    return process


def start_simulator(
    *, cold_start: float = 1.0, tokens_per_second: float = 1000, token: str | None = None, **extra: str
) -> Process:
    """`crazy-gary simulate` on a free port: cold starts of `cold_start` s, answers at that pace;
    `extra` are more `CRAZY_GARY_SIM_*` variables."""
    port = free_port()
    env = base_env(
        CRAZY_GARY_SIM_COLD_START=str(cold_start),
        CRAZY_GARY_SIM_TOKENS_PER_SECOND=str(tokens_per_second),
        **extra,
    )
    args = ["simulate", "--port", str(port), *(["--token", token] if token else [])]
    return start(args, env, f"http://127.0.0.1:{port}", "/_sim/calls")


@pytest.fixture
def simulator() -> Iterator[Process]:
    process = start_simulator()
    yield process
    process.stop()


def server_env(simulator: Process, **extra: str) -> dict[str, str]:
    values = {
        "HUGGINGFACE_API_KEY": "hf_simulator",
        "HF_ENDPOINTS_API_URL": f"{simulator.url}/v2",
        "HF_BASE_URL_120B": "demo/gpt-oss-120b",
        "HF_BASE_URL_20B": "demo/gpt-oss-20b",
        "CRAZY_GARY_API_KEYS": f"ops:operator:{OPERATOR_KEY},app:user:{USER_KEY},viewer:{VIEWER_KEY}",
        "CRAZY_GARY_POLL_INTERVAL": "1",
        "CRAZY_GARY_POLL_FAST_INTERVAL": "0.2",
        # the default limits (10 wakes, 120 calls a minute) would refuse the bursts some tests send;
        # tests of the limits set their own
        "CRAZY_GARY_RATE_LIMIT": "100000/minute",
        "CRAZY_GARY_MANAGEMENT_RATE_LIMIT": "100000/minute",
    }
    values.update(extra)
    return base_env(**values)


def start_server(simulator: Process, **extra: str) -> Process:
    port = free_port()
    args = ["serve", "--no-simulate", "--port", str(port)]
    return start(args, server_env(simulator, **extra), f"http://127.0.0.1:{port}", "/readyz")


@pytest.fixture
def server(simulator: Process) -> Iterator[Process]:
    process = start_server(simulator, ENDPOINT_AUTO_SLEEP="900")
    yield process
    process.stop()


def crazy_gary(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would."""
    assert shutil.which(str(BIN)), "the console script is installed"
    return subprocess.run(
        [str(BIN), *args], env=env or base_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def api(process: Process, method: str, path: str, key: str = OPERATOR_KEY, **kwargs: Any) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx2.request(method, process.url + path, headers=headers, timeout=30, **kwargs)


def sim_calls(simulator: Process) -> dict[str, Any]:
    result: dict[str, Any] = httpx2.get(simulator.url + "/_sim/calls").json()
    return result


def sim_set(simulator: Process, path: str, **body: Any) -> None:
    httpx2.put(f"{simulator.url}/_sim/{path}", json=body).raise_for_status()


def status_of(server: Process, key: str) -> dict[str, Any]:
    """One endpoint object, read with the viewer key."""
    body: dict[str, Any] = api(server, "GET", f"/api/endpoints/status/{key}", key=VIEWER_KEY).json()
    return body


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis prefix of the test's own on the machine's Redis; its keys are removed afterwards."""
    name = f"crazy-gary-test-{uuid.uuid4().hex[:8]}:"
    yield name
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"{name}*"):
        client.delete(key)
    client.close()
