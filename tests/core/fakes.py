"""In-memory stand-ins for the core's ports, timed by the manual clock: the management API (for the
manager's unit tests) and the inference port (for the engine's)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from crazy_gary.clock import ManualClock
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.errors import ManagementRejected, ManagementUnavailable, UpstreamError
from crazy_gary.hf.inference import RETRY_STATUS


@dataclass
class FakeRecord:
    state: str
    started_at: float | None = None
    min_replica: int = 0
    max_replica: int = 1
    scale_to_zero_timeout: int | None = 60
    health_route: str = "/health"


class FakeManagement:
    """Behaves like HF's management API: resume or a poke starts a cold start of `cold_start` seconds."""

    def __init__(self, clock: ManualClock, states: dict[str, str], *, cold_start: float = 20.0) -> None:
        self.clock = clock
        self.cold_start = cold_start
        self.records = {name: FakeRecord(state) for name, state in states.items()}
        self.calls: Counter[str] = Counter()
        self.down = False
        self.list_gate: asyncio.Event | None = None  # when set, list answers what it saw, once released
        self.pause_gate: asyncio.Event | None = None  # when set, a pause takes effect once released
        self.healthy = True  # what a running endpoint's health route answers: 200 (True) or 503
        self.start_on_health = True  # whether a GET of the health route starts a scaled-to-zero endpoint
        self.updates: list[tuple[str, int, int, int]] = []  # (name, min, max, idle minutes)
        self.routes: list[tuple[str, str]] = []  # (probe or poke, route) as asked

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
            health_route=record.health_route,
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
        if self.pause_gate is not None:
            await self.pause_gate.wait()
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
        self.routes.append(("poke", route))
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
        self.routes.append(("probe", route))
        if url.startswith("http://sim/"):
            return self.healthy and self._view(url.rsplit("/", 1)[-1]).state == "running"
        return True


COMPLETION = json.dumps({"object": "chat.completion", "choices": [{"message": {"content": "hi"}}]}).encode()


@dataclass
class FakeAnswer:
    """One answer of the fake inference port; with `cut` ("connect" or "timeout") the endpoint breaks
    off after `chunks`."""

    status: int = 200
    chunks: tuple[bytes, ...] = (COMPLETION,)
    cut: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    attempts: int = 1
    closed: bool = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.cut is not None:
            raise UpstreamError("The endpoint broke off its answer.", kind=self.cut, attempts=self.attempts)

    async def aiter_lines(self) -> AsyncIterator[str]:
        async for chunk in self.aiter_bytes():
            for line in chunk.decode().splitlines():
                yield line

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        self.closed = True


Step = int | str | FakeAnswer  # a status, a fault ("connect", "timeout"), or a whole answer


class FakeInference:
    """The inference port in memory. Each endpoint (by name) answers the steps scripted for it, one
    per upstream call, then 200; transient faults are retried up to `attempts` calls, as
    `InferenceClient` does, and the answer or the UpstreamError says how many calls it took."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self.scripts: defaultdict[str, deque[Step]] = defaultdict(deque)
        self.calls: Counter[str] = Counter()  # upstream calls, by endpoint name
        self.sent: list[tuple[str, bytes, Mapping[str, str]]] = []
        self.methods: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}  # by endpoint name: its calls wait for the event
        self.closed = False

    def script(self, name: str, *steps: Step) -> None:
        self.scripts[name].extend(steps)

    async def open(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> FakeAnswer:
        self.sent.append((url, body, headers))
        self.methods.append(method)
        name = url.removeprefix("http://sim/").split("/", 1)[0]
        if name in self.gates:
            await self.gates[name].wait()
        error = UpstreamError(f"{url} was never asked.", kind="connect", attempts=0)
        for attempt in range(1, self.attempts + 1):
            self.calls[name] += 1
            script = self.scripts[name]
            step = script.popleft() if script else 200
            if isinstance(step, str):
                error = UpstreamError(f"{url} failed: {step}.", kind=step, attempts=attempt)
            elif isinstance(step, int) and step in RETRY_STATUS:
                error = UpstreamError(f"{url} answered {step}.", kind="status", status=step, attempts=attempt)
            else:
                answer = step if isinstance(step, FakeAnswer) else FakeAnswer(status=step)
                answer.attempts = attempt
                return answer
        raise error

    async def aclose(self) -> None:
        self.closed = True
