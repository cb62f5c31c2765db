"""crazy-gary and the simulator in this test's event loop, on real loopback sockets and one manual
clock (a cold start takes no real time), with the keys of the tests: user `app`, users `alice` and
`bob`, operator `ops`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import openai
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.config import SIMULATOR_TOKEN, Settings
from crazy_gary.simulator import SimulatorConfig, SimulatorServer
from crazy_gary.web import create_app

from ..conftest import serve_app

USER, ALICE, BOB, OPERATOR = "user-key-123456", "alice-key-123456", "bob-key-1234567", "ops-key-1234567"
KEYS = f"app:user:{USER},alice:user:{ALICE},bob:user:{BOB},ops:operator:{OPERATOR}"
T = TypeVar("T")


@dataclass
class Served:
    url: str
    sim: str
    clock: ManualClock
    http: httpx2.AsyncClient
    app: Any
    clients: dict[str, openai.AsyncOpenAI] = field(default_factory=dict)

    async def run(self, awaitable: Awaitable[T], within: float = 120.0) -> T:
        """Await `awaitable` while the clock moves a second at a time, for `within` seconds at most."""
        task = asyncio.ensure_future(awaitable)
        waited = 0.0
        while True:
            for _ in range(20):  # real time for the loopback's bytes (and a client in a thread)
                await self.clock.settle()
                if task.done():
                    return task.result()
                await asyncio.sleep(0.001)
            assert waited < within, f"no answer within {within} s"
            await self.clock.advance(1)
            waited += 1

    def openai(self, key: str = USER) -> openai.AsyncOpenAI:
        """The official client with `key` (one per key, closed with the app)."""
        if key not in self.clients:
            self.clients[key] = openai.AsyncOpenAI(
                api_key=key, base_url=f"{self.url}/v1", max_retries=0, timeout=30
            )
        return self.clients[key]

    async def sim_set(self, path: str, **body: Any) -> None:
        (await self.http.put(f"{self.sim}/_sim/{path}", json=body)).raise_for_status()

    async def sim_calls(self, name: str) -> dict[str, int]:
        calls: dict[str, int] = (await self.http.get(f"{self.sim}/_sim/calls")).json()[name]
        return calls

    async def status(self, key: str) -> str:
        answer = await self.http.get(f"{self.url}/api/endpoints/status/{key}", headers=self.auth)
        return str(answer.json()["status"])

    async def until(self, condition: Callable[[], Awaitable[bool]], within: float = 120.0) -> None:
        async def wait() -> None:
            while not await condition():
                await asyncio.sleep(0.005)

        await self.run(wait(), within)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {USER}"}


async def is_status(served: Served, key: str, status: str) -> bool:
    return await served.status(key) == status


@contextlib.asynccontextmanager
async def serve_with_simulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str = "", *, clock: ManualClock | None = None
) -> AsyncIterator[Served]:
    """crazy-gary with 120b → 20b (and what `toml` adds) on the simulator, whose gpt-oss endpoints
    run (their models loaded); its store in `tmp_path`."""
    for name in ("HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "crazy-gary.toml"
    config.write_text(toml)
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    settings = Settings(
        CRAZY_GARY_SIMULATE=True,
        CRAZY_GARY_API_KEYS=KEYS,
        CRAZY_GARY_FALLBACK_WAIT=5,
        CRAZY_GARY_POLL_FAST_INTERVAL=1,
        CRAZY_GARY_DATA_DIR=str(tmp_path / "data"),
        CRAZY_GARY_RATE_LIMIT="100000/minute",
    )
    clock = clock or ManualClock()
    simulator = SimulatorConfig(token=SIMULATOR_TOKEN, cold_start=30, tokens_per_second=1_000_000)
    async with SimulatorServer(simulator, clock) as sim, httpx2.AsyncClient(timeout=30) as http:
        app = create_app(settings, clock=clock, management_url=sim.management_url)
        async with serve_app(app) as url:
            served = Served(url, sim.url, clock, http, app)
            for name in ("gpt-oss-120b", "gpt-oss-20b"):
                await served.sim_set(f"endpoints/{name}", state="running")
            for key in ("120b", "20b"):
                await served.until(lambda key=key: is_status(served, key, "running"))
            try:
                yield served
            finally:
                for client in served.clients.values():
                    await client.close()
