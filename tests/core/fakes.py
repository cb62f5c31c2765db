"""An in-memory management API for the manager's unit tests, timed by the manual clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from crazy_gary.clock import ManualClock
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.errors import ManagementRejected, ManagementUnavailable


@dataclass
class FakeRecord:
    state: str
    started_at: float | None = None
    min_replica: int = 0
    max_replica: int = 1
    scale_to_zero_timeout: int | None = 60


class FakeManagement:
    """Behaves like HF's management API: resume or a poke starts a cold start of `cold_start` seconds."""

    def __init__(self, clock: ManualClock, states: dict[str, str], *, cold_start: float = 20.0) -> None:
        self.clock = clock
        self.cold_start = cold_start
        self.records = {name: FakeRecord(state) for name, state in states.items()}
        self.calls: Counter[str] = Counter()
        self.down = False
        self.list_gate: asyncio.Event | None = None  # when set, list answers what it saw, once released
        self.healthy = True  # what a running endpoint's health route answers: 200 (True) or 503
        self.start_on_health = True  # whether a GET of the health route starts a scaled-to-zero endpoint
        self.updates: list[tuple[str, int, int, int]] = []  # (name, min, max, idle minutes)

    def _check(self) -> None:
        if self.down:
            raise ManagementUnavailable("The Hugging Face management API could not be reached.")

    def _view(self, name: str) -> UpstreamEndpoint:
        record = self.records[name]
        started = record.started_at
        if (
            record.state == "initializing"
            and started is not None
            and self.clock.now() >= started + self.cold_start
        ):
            record.state = "running"
        url = None if record.state == "paused" else f"http://sim/{name}"
        return UpstreamEndpoint(
            namespace="demo",
            name=name,
            state=record.state,
            url=url,
            repository=f"openai/{name}",
            vendor="aws",
            instance_type="nvidia-h200",
            instance_size="x1",
            min_replica=record.min_replica,
            max_replica=record.max_replica,
            scale_to_zero_timeout=record.scale_to_zero_timeout,
        )

    def _start(self, name: str) -> None:
        record = self.records[name]
        record.state = "initializing"
        record.started_at = self.clock.now()
        self.calls["starts"] += 1

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        self.calls["list"] += 1
        self._check()
        seen = [self._view(name) for name in self.records]
        if self.list_gate is not None:
            await self.list_gate.wait()
        return seen

    async def get(self, namespace: str, name: str) -> UpstreamEndpoint:
        self.calls["get"] += 1
        self._check()
        return self._view(name)

    async def resume(self, namespace: str, name: str) -> UpstreamEndpoint:
        self.calls["resume"] += 1
        self._check()
        if self.records[name].state in ("failed", "updateFailed"):
            raise ManagementRejected("Hugging Face refused to resume a failed endpoint.", 400)
        if self.records[name].state in ("paused", "scaledToZero"):
            self._start(name)
            self.records[name].min_replica = self.records[name].max_replica = 1  # as HF does
        return self._view(name)

    async def pause(self, namespace: str, name: str) -> UpstreamEndpoint:
        self.calls["pause"] += 1
        self._check()
        record = self.records[name]
        record.state = "paused"
        record.min_replica = record.max_replica = 0  # as HF does
        return self._view(name)

    async def update_scaling(
        self,
        namespace: str,
        name: str,
        *,
        min_replica: int,
        max_replica: int,
        scale_to_zero_timeout: int | None,
    ) -> UpstreamEndpoint:
        self.calls["update"] += 1
        self._check()
        record = self.records[name]
        record.min_replica, record.max_replica = min_replica, max_replica
        record.scale_to_zero_timeout = scale_to_zero_timeout
        self.updates.append((name, min_replica, max_replica, scale_to_zero_timeout))
        return self._view(name)

    async def scale_to_zero(self, namespace: str, name: str) -> UpstreamEndpoint:
        self.calls["scale-to-zero"] += 1
        self._check()
        self.records[name].state = "scaledToZero"
        return self._view(name)

    async def poke(self, url: str, route: str = "/health") -> None:
        self.calls["poke"] += 1
        name = url.rsplit("/", 1)[-1]
        if self.start_on_health and self.records[name].state == "scaledToZero":
            self._start(name)

    async def send_inference(self, url: str, model: str) -> None:
        self.calls["inference"] += 1
        name = url.rsplit("/", 1)[-1]
        if self.records[name].state == "scaledToZero":
            self._start(name)

    async def prices(self, namespace: str) -> dict[str, float]:
        self.calls["prices"] += 1
        self._check()
        return {"aws nvidia-h200 x1": 5.0}

    async def probe(self, url: str, route: str = "/health") -> bool:
        self.calls["probe"] += 1
        if url.startswith("http://sim/"):
            return self.healthy and self._view(url.rsplit("/", 1)[-1]).state == "running"
        return True
