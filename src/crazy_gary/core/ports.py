"""What the core needs from the outside world, as protocols; adapters in `crazy_gary.hf` fill them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CHAT_PATH",
    "Alone",
    "Coordination",
    "InferenceAnswer",
    "InferencePort",
    "ManagementAPI",
    "PersistedEndpoint",
    "Presence",
    "Reading",
    "UpstreamEndpoint",
]


CHAT_PATH = "/v1/chat/completions"  # OpenAI chat completions: on each endpoint, and on the gateway


@dataclass(frozen=True)
class UpstreamEndpoint:
    """What the Hugging Face management API says about one endpoint."""

    namespace: str
    name: str
    state: str
    url: str | None = None
    repository: str | None = None
    task: str | None = None  # what the model does, as HF names it: `text-generation`, `sentence-embeddings`
    vendor: str | None = None
    region: str | None = None
    instance_type: str | None = None
    instance_size: str | None = None
    message: str | None = None
    health_route: str = "/health"
    min_replica: int | None = None
    max_replica: int | None = None
    scale_to_zero_timeout: int | None = None  # HF's own idle timer, in minutes; None: never

    @property
    def instance(self) -> str | None:
        """`aws nvidia-h200 x1`, the form of HF's price list."""
        parts = [part for part in (self.vendor, self.instance_type, self.instance_size) if part]
        return " ".join(parts) if parts else None


@dataclass(frozen=True)
class PersistedEndpoint:
    """What must survive a restart about one endpoint (times are Unix seconds)."""

    last_activity: float | None = None
    wake_time: float | None = None
    sleep_time: float | None = None
    running_since: float | None = None
    operation: str | None = None
    operation_actor: str | None = None
    cold_start: float | None = None
    first_seen: float | None = None


class ManagementAPI(Protocol):
    """The management API of Hugging Face Inference Endpoints, asynchronously.

    Every method raises `crazy_gary.errors.ManagementError` subclasses, never a library's own errors.
    """

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        """Every endpoint of a namespace, in one call."""

    async def get(self, namespace: str, name: str) -> UpstreamEndpoint:
        """One endpoint."""

    async def resume(self, namespace: str, name: str) -> UpstreamEndpoint:
        """Resume a paused endpoint (running already is fine)."""

    async def pause(self, namespace: str, name: str) -> UpstreamEndpoint:
        """Pause: no replica until an explicit resume."""

    async def scale_to_zero(self, namespace: str, name: str) -> UpstreamEndpoint:
        """Scale to zero: no replica until the next request."""

    async def update_scaling(
        self,
        namespace: str,
        name: str,
        *,
        min_replica: int,
        max_replica: int,
        scale_to_zero_timeout: int | None,
    ) -> UpstreamEndpoint:
        """Set the replica counts and HF's own idle timer (minutes; None leaves it as it is)."""

    async def poke(self, url: str, route: str = "/health") -> None:
        """One GET of the endpoint's health route; HF may count it as traffic that starts a replica."""

    async def send_inference(self, url: str, model: str) -> None:
        """One minimal inference request, the traffic that surely starts a scaled-to-zero endpoint;
        its answer (most likely a 503 while the replica starts) does not matter."""

    async def probe(self, url: str, route: str = "/health") -> bool:
        """True when the endpoint's health route answers 200."""

    async def prices(self, namespace: str) -> dict[str, float]:
        """Live hourly prices by instance (`aws nvidia-h200 x1`) from the hardware list."""


class InferenceAnswer(Protocol):
    """An endpoint's answer whose status and headers arrived; its body is still to be read, then
    `aclose()` is awaited. Reading the body raises `crazy_gary.errors.UpstreamError` when the endpoint
    breaks off (nothing is retried once a byte has come)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def attempts(self) -> int:
        """How many times the request was sent to get this answer (1 when it was not retried)."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it comes."""
        ...

    def aiter_lines(self) -> AsyncIterator[str]:
        """The body line by line, without line ends."""
        ...

    async def aread(self) -> bytes:
        """The whole body."""
        ...

    async def aclose(self) -> None:
        """Let the connection go (to the pool when the body was read)."""
        ...


class InferencePort(Protocol):
    """How the engine sends inference requests (`crazy_gary.hf.inference.InferenceClient`)."""

    async def open(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> InferenceAnswer:
        """Send `body` to `url` (POST unless told), retrying transient faults (connection errors, timeouts, 429 and
        502/503/504) before any byte of the answer is read; the answer, or
        `crazy_gary.errors.UpstreamError` carrying `attempts` once the retries are spent."""
        ...

    async def aclose(self) -> None:
        """Close the pooled connections."""
        ...


@dataclass(frozen=True)
class Presence:
    """An endpoint's activity as replicas tell each other: its last inference and requests in flight."""

    last_activity: float | None
    in_flight: int


@dataclass(frozen=True)
class Reading:
    """What one reading of a namespace's endpoints found, as replicas tell each other: the endpoints
    listed, or why they could not be (`error`); `asked_at` is the wall time the question was asked."""

    namespace: str
    asked_at: float
    endpoints: tuple[UpstreamEndpoint, ...] = ()
    error: str | None = None


class Coordination(Protocol):
    """What the replicas of one deployment agree on (Redis); a single process agrees with itself."""

    async def claim_wake(self, key: str) -> bool:
        """Whether this replica should ask Hugging Face to start `key` now: False while another
        replica's recent request to start it stands (it lapses after a few seconds)."""
        ...

    async def lead(self) -> bool:
        """Take or renew the leader's lease; whether this replica leads (runs auto-sleep and reads
        Hugging Face's states for all) now."""
        ...

    async def share(self, ours: Mapping[str, Presence]) -> Mapping[str, Presence] | None:
        """Tell the others this replica's presence per endpoint; every replica's together (the newest
        activity, the sum of requests in flight), or None when nothing can be shared now."""
        ...

    async def share_readings(self, ours: Iterable[Reading]) -> list[Reading] | None:
        """Tell the others this replica's newest readings of Hugging Face; the newest reading of each
        namespace by any replica, or None when nothing can be shared now."""
        ...

    async def share_circuits(self, opened: Mapping[str, float]) -> Mapping[str, float] | None:
        """Tell the others when this replica's circuit breakers last opened (wall time, by endpoint);
        the latest opening of each endpoint's circuit by any replica, or None."""
        ...


class Alone:
    """`Coordination` of a single process: every claim is granted and it always leads."""

    async def claim_wake(self, key: str) -> bool:
        return True

    async def lead(self) -> bool:
        return True

    async def share(self, ours: Mapping[str, Presence]) -> Mapping[str, Presence] | None:
        return None

    async def share_readings(self, ours: Iterable[Reading]) -> list[Reading] | None:
        return None

    async def share_circuits(self, opened: Mapping[str, float]) -> Mapping[str, float] | None:
        return None
