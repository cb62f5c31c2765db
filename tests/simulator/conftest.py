"""Fixtures: a simulator on a real loopback socket, driven by a ManualClock, and clients for it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from huggingface_hub import HfApi, constants

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import COLD_START, NAMESPACE, TOKEN, HubCall


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Instant tokens so answers need no clock moves; tests that pace tokens build their own."""
    return SimulatorConfig(cold_start=COLD_START, tokens_per_second=math.inf)


@pytest.fixture
async def sim(
    sim_config: SimulatorConfig, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_config, clock=clock) as server:
        monkeypatch.setattr(constants, "INFERENCE_ENDPOINTS_ENDPOINT", server.management_url)
        yield server


@pytest.fixture
def hub(sim: SimulatorServer) -> HubCall:
    """Call an `HfApi` method off the event loop, as users do, with namespace and token filled in."""
    api = HfApi()

    async def call(method: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("namespace", NAMESPACE)
        kwargs.setdefault("token", TOKEN)
        return await asyncio.to_thread(getattr(api, method), *args, **kwargs)

    return call


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client for the simulator's origin, carrying the right token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=sim.url, headers=headers, timeout=10) as http:
        yield http
