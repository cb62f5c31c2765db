"""Fifty endpoints, created through huggingface_hub and configured by TOML: reads stay cheap upstream."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants

from .conftest import VIEWER_KEY, Process, sim_calls, start_server, wait_until

COUNT = 50
# Without TCP_NODELAY the client's small writes meet the server's delayed ACK: 40 ms a request.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def client(url: str, headers: dict[str, str]) -> httpx2.Client:
    return httpx2.Client(
        base_url=url, headers=headers, transport=httpx2.HTTPTransport(socket_options=NODELAY)
    )


def create_endpoints() -> list[str]:
    names = [f"model-{index:02d}" for index in range(COUNT)]
    hf = HfApi()
    for name in names:
        hf.create_inference_endpoint(
            name,
            repository=f"acme/{name}",
            framework="pytorch",
            accelerator="gpu",
            instance_size="x1",
            instance_type="nvidia-l4",
            region="us-east-1",
            vendor="aws",
            min_replica=0,
            scale_to_zero_timeout=15,
            namespace="demo",
            token="hf_simulator",
        )
    return names


def write_config(path: Path, names: list[str]) -> None:
    lines = []
    for name in names:
        lines += [f"[endpoints.{name}]", f'url = "demo/{name}"', ""]
    path.write_text("\n".join(lines))


def _management_calls(calls: dict[str, object]) -> int:
    """Calls the management API answered: lists, and every endpoint's own but inference and starts."""
    count = int(calls["_list"])  # type: ignore[call-overload]
    for name, value in calls.items():
        if name != "_list":
            count += sum(v for k, v in value.items() if k not in ("inference", "starts"))  # type: ignore[union-attr]
    return count


def _read_by_twenty_clients(url: str, headers: dict[str, str]) -> tuple[int, float]:
    """Twenty clients reading the status at once: their reads and the seconds they read for."""
    stop = threading.Event()
    reads = [0] * 20

    def reader(index: int) -> None:
        with client(url, headers) as reader_client:
            while not stop.is_set():
                assert reader_client.get("/api/endpoints/status").status_code == 200
                reads[index] += 1

    threads = [threading.Thread(target=reader, args=(index,)) for index in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    # a rate needs a window of real time (the server's clock is not ours): at least 3 s, and
    # long enough that the readers made over 100 reads in it, however slow the machine
    wait_until(lambda: time.monotonic() - started >= 3 and sum(reads) > 100, timeout=30)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(reads), time.monotonic() - started


def test_fifty_endpoints_status_is_fast_and_upstream_load_bounded(simulator: Process, tmp_path: Path) -> None:
    """Status answers in milliseconds and the management API sees ≤ 6 calls/s while 20 clients read."""
    original = constants.INFERENCE_ENDPOINTS_ENDPOINT
    constants.INFERENCE_ENDPOINTS_ENDPOINT = f"{simulator.url}/v2"
    try:
        names = create_endpoints()
    finally:
        constants.INFERENCE_ENDPOINTS_ENDPOINT = original
    config = tmp_path / "fifty.toml"
    write_config(config, names)
    server = start_server(
        simulator,
        CRAZY_GARY_CONFIG=str(config),
        HF_BASE_URL_120B="",
        HF_BASE_URL_20B="",
        CRAZY_GARY_POLL_INTERVAL="10",
        CRAZY_GARY_POLL_FAST_INTERVAL="1",
    )
    headers = {"Authorization": f"Bearer {VIEWER_KEY}"}
    try:
        with client(server.url, headers) as http:

            def all_running() -> bool:
                endpoints = http.get("/api/endpoints/status").json()["endpoints"]
                return len(endpoints) == COUNT and all(e["status"] == "running" for e in endpoints.values())

            wait_until(all_running, timeout=30)
            timings = []
            for _ in range(50):
                started = time.perf_counter()
                assert http.get("/api/endpoints/status").status_code == 200
                timings.append(time.perf_counter() - started)
            assert statistics.median(timings) < 0.02
        before = sim_calls(simulator)
        reads, elapsed = _read_by_twenty_clients(server.url, headers)
        after = sim_calls(simulator)
    finally:
        server.stop()
    assert reads > 100
    assert (_management_calls(after) - _management_calls(before)) / elapsed <= 6
