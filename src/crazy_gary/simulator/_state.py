"""One simulated endpoint: its configuration, its state machine and its fault settings.

Transitions are computed lazily from the clock whenever a record is read: a start records when
it began, and the endpoint is `pending`, then `initializing` (or `updating`), then `running`
once its cold start has passed; a running endpoint whose scaling allows it scales itself to
zero once Hugging Face's own idle timer has run out. No background task is needed; waiters
sleep on the clock until the next transition or until :meth:`EndpointRecord.changed` is set by
an explicit change.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["PENDING_SECONDS", "START_ON", "EndpointFaults", "EndpointRecord", "iso_time", "render_endpoint"]

#: How long a start waits in `pending` by default, as Hugging Face schedules a replica.
PENDING_SECONDS = 1.0

#: What may start a scaled-to-zero endpoint: any request, or only one to an inference route.
START_ON = ("any", "inference")

_TRANSITIONAL = frozenset({"pending", "initializing", "updating"})

# state -> (status.message, readyReplica, targetReplica); the messages Hugging Face is known to
# send are used where known.
_STATUS_DETAILS: dict[str, tuple[str, int, int]] = {
    "pending": ("Endpoint waiting to be scheduled", 0, 1),
    "initializing": ("Endpoint is initializing", 0, 1),
    "updating": ("Endpoint waiting for the update", 0, 1),
    "updateFailed": ("Endpoint failed to update", 0, 1),
    "running": ("Endpoint is ready", 1, 1),
    "paused": ("Endpoint is paused", 0, 0),
    "failed": ("Endpoint failed to deploy", 0, 1),
    "scaledToZero": ("Endpoint is scaled to zero", 0, 0),
}


@dataclass
class EndpointFaults:
    """What the control API may change about one endpoint's behaviour."""

    cold_start: float
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    disconnect_rate: float = 0.0
    ready_delay: float = 0.0
    pending: float = PENDING_SECONDS
    start_on: str = "any"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Start:
    began_at: float
    pending_for: float
    phase: str  # "initializing" or "updating"


class EndpointRecord:
    """An endpoint of the simulated namespace; every read goes through the clock's `now`.

    `minute` is how many seconds one minute of `scaleToZeroTimeout` lasts; `account` is the
    `{"id", "name"}` shown as `createdBy` and `updatedBy`.
    """

    def __init__(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        now: float,
        state: str,
        cold_start: float,
        minute: float = 60.0,
        account: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.created_at = now
        self.minute = minute
        self.account = account or {"id": "0" * 24, "name": "simulator"}
        self.faults = EndpointFaults(cold_start=cold_start)
        self._state = state
        self._since = now
        self._start: _Start | None = None
        self._running_since: float | None = None
        self._last_traffic: float | None = None
        self._scaling_set_at = now
        self._changed = asyncio.Event()
        self.set_state(state, now)

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced by a fresh event) whenever the state or a fault setting is changed."""
        return self._changed

    @property
    def scaling(self) -> dict[str, Any]:
        scaling: dict[str, Any] = self.spec["compute"]["scaling"]
        return scaling

    def ready_at(self) -> float | None:
        """When the start under way reaches `running`, or None when nothing is starting."""
        start = self._start
        if start is None:
            return None
        return start.began_at + start.pending_for + self.faults.cold_start

    def routes_ready_at(self, now: float) -> float | None:
        """When the endpoint's routes answer (running, model loaded), or None when it is not on its way."""
        self._settle(now)
        ready = self.ready_at()
        if ready is not None:
            return ready + self.faults.ready_delay
        if self._state == "running" and self._running_since is not None:
            return self._running_since + self.faults.ready_delay
        return None

    def state(self, now: float) -> str:
        self._settle(now)
        start = self._start
        if start is None:
            return self._state
        return "pending" if now - start.began_at < start.pending_for else start.phase

    def loading(self, now: float) -> bool:
        """True while HF reports `running` but the model is still loading (`ready_delay`)."""
        if self.state(now) != "running" or self._running_since is None:
            return False
        return now < self._running_since + self.faults.ready_delay

    def updated_at(self, now: float) -> float:
        self._settle(now)
        start = self._start
        if start is not None and now - start.began_at >= start.pending_for:
            return start.began_at + start.pending_for
        return self._since

    def idle_deadline(self) -> float | None:
        """When HF's own idle timer scales the running endpoint to zero, or None when it never does."""
        if self._state != "running" or self._start is not None or self._running_since is None:
            return None
        minutes = self.scaling.get("scaleToZeroTimeout")
        if self.scaling.get("minReplica") != 0 or not isinstance(minutes, int | float):
            return None
        anchor = max(self._running_since, self._last_traffic or -math.inf)
        # A scaling changed later applies from that moment, never retroactively.
        return max(anchor + minutes * self.minute, self._scaling_set_at)

    def begin_start(
        self, now: float, *, pending_for: float | None = None, phase: str = "initializing"
    ) -> None:
        """Begin a start: `pending_for` seconds of `pending` (the `pending` setting by default), then
        `phase` for the cold start."""
        wait = self.faults.pending if pending_for is None else pending_for
        self._start = _Start(began_at=now, pending_for=wait, phase=phase)
        self._state = phase
        self._since = now
        self._running_since = None
        self._notify()

    def set_state(self, state: str, now: float) -> None:
        """Put the endpoint in `state` now; a transitional state starts the timer towards `running`."""
        if state in _TRANSITIONAL:
            pending_for = None if state == "pending" else 0.0
            phase = "updating" if state == "updating" else "initializing"
            self.begin_start(now, pending_for=pending_for, phase=phase)
            return
        self._state = state
        self._since = now
        self._start = None
        self._running_since = now if state == "running" else None
        self._notify()

    def faults_changed(self) -> None:
        """The fault settings were changed: waiters recompute when the endpoint will answer."""
        self._notify()

    def note_traffic(self, now: float) -> None:
        """A request reached an inference route: HF's idle timer starts again from now."""
        self._settle(now)
        self._last_traffic = now

    def update_spec(self, spec: dict[str, Any], now: float, *, scaling_changed: bool) -> None:
        """Apply a configuration change now (the state stays as it is); new scaling applies at once."""
        self._settle(now)  # what happened before the change happened under the old configuration
        self.spec = spec
        if scaling_changed:
            self._scaling_set_at = now
        if self._start is None:
            self._since = now

    def set_replicas(self, low: int, high: int, now: float) -> None:
        """Set `minReplica` and `maxReplica`, as pause and resume do."""
        self._settle(now)
        self.scaling["minReplica"], self.scaling["maxReplica"] = low, high
        self._scaling_set_at = now

    def release_waiters(self) -> None:
        """Wake everything waiting on this record, e.g. because it is being removed."""
        self._notify()

    def _settle(self, now: float) -> None:
        ready = self.ready_at()
        if ready is not None and now >= ready:
            self._state = "running"
            self._since = ready
            self._running_since = ready
            self._start = None
        idle_at = self.idle_deadline()
        if idle_at is not None and now >= idle_at:
            self._state = "scaledToZero"
            self._since = idle_at
            self._running_since = None

    def _notify(self) -> None:
        previous, self._changed = self._changed, asyncio.Event()
        previous.set()


def iso_time(timestamp: float) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as the real API writes it."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_endpoint(record: EndpointRecord, base_url: str, now: float) -> dict[str, Any]:
    """The endpoint JSON of the management API; `base_url` is the simulator's own address."""
    state = record.state(now)
    message, ready, target = _STATUS_DETAILS[state]
    status: dict[str, Any] = {
        "createdAt": iso_time(record.created_at),
        "createdBy": dict(record.account),
        "updatedAt": iso_time(record.updated_at(now)),
        "updatedBy": dict(record.account),
        "private": None,
        "state": state,
        "message": message,
    }
    if state != "paused":  # a paused endpoint has no address; a scaled-to-zero one keeps it
        status["url"] = f"{base_url}/endpoints/{record.name}"
    status["readyReplica"], status["targetReplica"] = ready, target
    return {"name": record.name, **record.spec, "status": status}
