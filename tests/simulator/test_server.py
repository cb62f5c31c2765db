"""Configuration, the public names, and serving the simulator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx2
import pytest

import crazy_gary.simulator as simulator
from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import NAMESPACE, TOKEN, until


def test_public_names_are_sorted() -> None:
    """The package exports exactly its public API, in a sorted __all__."""
    assert simulator.__all__ == sorted(simulator.__all__)
    assert set(simulator.__all__) == {
        "SimulatorConfig",
        "SimulatorServer",
        "create_simulator_app",
        "run_simulator",
    }


def test_config_defaults() -> None:
    """The defaults are the ones the specification names."""
    config = SimulatorConfig()
    assert (config.token, config.namespace, config.cold_start) == ("hf_simulator", "demo", 20.0)
    assert (config.tokens_per_second, config.initial_state, config.seed) == (50.0, "scaledToZero", 0)
    assert config.minute == 60.0


@pytest.mark.parametrize(
    "changes",
    [{"initial_state": "asleep"}, {"cold_start": -1}, {"tokens_per_second": 0}, {"token": ""}],
)
def test_config_refuses_nonsense(changes: dict[str, object]) -> None:
    """An impossible setting is refused when the config is built, with its name in the message."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        SimulatorConfig(**changes)  # type: ignore[arg-type]


async def test_server_addresses(clock: ManualClock) -> None:
    """The server binds a free loopback port and names its URLs after it; it is gone after exit."""
    server = SimulatorServer(SimulatorConfig(initial_state="running"), clock=clock)
    with pytest.raises(RuntimeError):
        _ = server.port
    async with server as sim, httpx2.AsyncClient() as client:
        assert sim.port > 0
        assert sim.url == f"http://127.0.0.1:{sim.port}"
        assert sim.management_url == f"{sim.url}/v2"
        listing = await client.get(
            f"{sim.management_url}/endpoint/{NAMESPACE}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert [item["status"]["state"] for item in listing.json()["items"]] == [
            "running",
            "running",
            "scaledToZero",  # bge-small-en starts scaled to zero whatever the initial state
        ]
        url = sim.url
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient() as client:
            await client.get(f"{url}/_sim/calls")


async def test_exit_releases_held_requests(clock: ManualClock) -> None:
    """Leaving the server answers requests held for a cold start with 503 instead of cutting them off."""
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Scale-Up-Timeout": "600"}
    async with httpx2.AsyncClient(headers=headers) as client:
        async with SimulatorServer(SimulatorConfig(), clock=clock) as sim:
            held = asyncio.ensure_future(client.get(f"{sim.url}/endpoints/gpt-oss-20b/health"))
            await until(lambda: clock.sleepers > 0)
        response = await held
    assert response.status_code == 503
    assert "shutting down" in response.json()["error"]["message"]


async def test_initial_initializing_state_comes_up_after_the_cold_start(clock: ManualClock) -> None:
    """An initial state of initializing proceeds to running after the cold start."""
    config = SimulatorConfig(initial_state="initializing", cold_start=5)
    async with SimulatorServer(config, clock=clock) as sim, httpx2.AsyncClient(base_url=sim.url) as client:
        await clock.advance(5)
        settings = (await client.get("/_sim/endpoints/gpt-oss-20b")).json()
        assert settings["state"] == "running"


def test_run_simulator_serves_until_ctrl_c() -> None:
    """`run_simulator` prints its management URL and token, serves, and stops cleanly on Ctrl-C."""
    code = (
        "from crazy_gary.simulator import SimulatorConfig, run_simulator\n"
        "run_simulator(SimulatorConfig(token='hf_cli'), port=0)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", code]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "hf_cli" in line
            management_url = next(word for word in line.split() if word.startswith("http://"))
            assert management_url.endswith("/v2")
            headers = {"Authorization": "Bearer hf_cli"}
            response = httpx2.get(f"{management_url}/endpoint/demo", headers=headers)
            assert response.status_code == 200
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
