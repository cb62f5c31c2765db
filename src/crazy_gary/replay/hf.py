"""Hugging Face for a replay: the simulator's own endpoint state machine, called in process (no
sockets, no real waiting), with a log of every state it enters, from which the bill is computed as
`serve` computes it (`crazy_gary.core.costs.billed_seconds`).

`ReplayManagement` is the management port and `ReplayInference` the inference port of the engine:
an endpoint that runs answers at once (a replay measures waiting for cold starts, not generation);
one that does not answers 503, and a request to a scaled-to-zero one starts it, as HF's proxy does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from crazy_gary.clock import Clock
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.errors import ManagementRejected, UpstreamError
from crazy_gary.hf.answers import to_upstream
from crazy_gary.simulator import SimulatorConfig
from crazy_gary.simulator._state import EndpointRecord, render_endpoint
from crazy_gary.simulator._world import World

__all__ = ["ReplayInference", "ReplayManagement"]

BASE = "http://replay"
_ANSWER = b'{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0}}'


class ReplayManagement:
    """The management API over a simulated namespace, each state an endpoint enters written down."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._views: dict[tuple[str, str, str], UpstreamEndpoint] = {}
        self.history: dict[str, list[tuple[float, str]]] = {name: [] for name in world.records}
        for name, record in world.records.items():
            self._note(name, record.state(world.now()))

    @classmethod
    def with_cold_start(cls, clock: Clock, cold_start: float, names: Iterable[str] = ()) -> ReplayManagement:
        """The simulator's namespace with the endpoints `names` too (configured as gpt-oss-20b), every
        endpoint scaled to zero, HF's own idle timer off (the policy replayed is crazy-gary's alone)."""
        world = World(SimulatorConfig(cold_start=cold_start, initial_state="scaledToZero"), clock)
        for name in names:
            if name not in world.records:
                world.add_asleep(name, like="gpt-oss-20b")
        for record in world.records.values():
            record.scaling["scaleToZeroTimeout"] = None
        return cls(world)

    def _note(self, name: str, state: str) -> None:
        """Write down a state entered now (a start's later phase that has not come yet goes)."""
        history = self.history.setdefault(name, [])
        while history and history[-1][0] > self.world.now():
            history.pop()
        if not history or history[-1][1] != state:
            history.append((self.world.now(), state))

    def _record(self, name: str) -> EndpointRecord:
        record = self.world.records.get(name)
        if record is None:
            raise ManagementRejected(f"Endpoint {name} not found", 404)
        return record

    def _view(self, record: EndpointRecord) -> UpstreamEndpoint:
        """What HF says of `record`: rendered as the simulator renders it, then read as crazy-gary
        reads HF, once for each state and scaling it is in (a week's polls would render it 100,000
        times over; what crazy-gary reads of it holds no time)."""
        state = record.state(self.world.now())
        key = (record.name, state, repr(record.scaling))
        view = self._views.get(key)
        if view is None:
            rendered = render_endpoint(record, BASE, self.world.now())
            view = self._views[key] = to_upstream(rendered, self.world.config.namespace)
        return view

    def _start(self, record: EndpointRecord) -> None:
        """A start: `pending` now, then initializing (billed, as HF bills it) once the pending time
        ends; `running` follows within the billed states, so it need not be written down."""
        now = self.world.now()
        self.world.start(record)
        history = self.history.setdefault(record.name, [])
        history.append((now, "pending"))
        history.append((now + record.faults.pending, "initializing"))

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        return [self._view(record) for record in self.world.records.values()]

    async def get(self, namespace: str, name: str) -> UpstreamEndpoint:
        return self._view(self._record(name))

    async def resume(self, namespace: str, name: str) -> UpstreamEndpoint:
        record = self._record(name)
        if record.state(self.world.now()) in ("paused", "scaledToZero"):
            record.set_replicas(1, 1, self.world.now())
            self._start(record)
        return self._view(record)

    async def pause(self, namespace: str, name: str) -> UpstreamEndpoint:
        record = self._record(name)
        record.set_replicas(0, 0, self.world.now())
        record.set_state("paused", self.world.now())
        self._note(name, "paused")
        return self._view(record)

    async def scale_to_zero(self, namespace: str, name: str) -> UpstreamEndpoint:
        record = self._record(name)
        record.set_state("scaledToZero", self.world.now())
        self._note(name, "scaledToZero")
        return self._view(record)

    async def update_scaling(
        self,
        namespace: str,
        name: str,
        *,
        min_replica: int,
        max_replica: int,
        scale_to_zero_timeout: int | None,
    ) -> UpstreamEndpoint:
        record = self._record(name)
        record.set_replicas(min_replica, max_replica, self.world.now())
        return self._view(record)  # HF's own idle timer stays off in a replay

    def _by_url(self, url: str) -> EndpointRecord | None:
        name = url.removeprefix(f"{BASE}/endpoints/").split("/", 1)[0]
        return self.world.records.get(name)

    async def poke(self, url: str, route: str = "/health") -> None:
        await self.send_inference(url, "")

    async def send_inference(self, url: str, model: str) -> None:
        record = self._by_url(url)
        if record is not None and record.state(self.world.now()) == "scaledToZero":
            self._start(record)

    async def probe(self, url: str, route: str = "/health") -> bool:
        record = self._by_url(url)
        now = self.world.now()
        return record is not None and record.state(now) == "running" and not record.loading(now)

    async def prices(self, namespace: str) -> dict[str, float]:
        return {}  # the published list (crazy_gary.core.costs) prices the instances


class _Answer:
    """An answer read at once."""

    status = 200
    attempts = 1
    headers: Mapping[str, str] = {"content-type": "application/json"}

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        yield _ANSWER

    async def aiter_lines(self) -> AsyncIterator[str]:
        yield _ANSWER.decode()

    async def aread(self) -> bytes:
        return _ANSWER

    async def aclose(self) -> None:
        return None


class ReplayInference:
    """The endpoints' inference routes: a running one answers at once, any other 503 (and one
    scaled to zero starts)."""

    def __init__(self, management: ReplayManagement) -> None:
        self._management = management

    async def open(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> _Answer:
        management = self._management
        record = management._by_url(url)
        now = management.world.now()
        if record is not None and record.state(now) == "running" and not record.loading(now):
            return _Answer()
        await management.send_inference(url, "")
        raise UpstreamError(f"{url} answered 503.", kind="status", status=503)

    async def aclose(self) -> None:
        return None
