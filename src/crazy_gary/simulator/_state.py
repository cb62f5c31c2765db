"""One simulated endpoint: its configuration, its state machine and its fault settings.

Transitions are computed lazily from the clock whenever a record is read: a start records when
it began, and the endpoint is `pending`, then `initializing` (or `updating`), then `running`
once its cold start has passed. No background task is needed; waiters sleep on the clock until
the next transition or until :meth:`EndpointRecord.changed` is set by an explicit change.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["PENDING_SECONDS", "EndpointFaults", "EndpointRecord", "iso_time", "render_endpoint"]

#: How long a freshly created endpoint stays `pending` before it initializes.
PENDING_SECONDS = 1.0

_TRANSITIONAL = frozenset({"pending", "initializing", "updating"})

# state -> (status.message, readyReplica, targetReplica)
_STATUS_DETAILS: dict[str, tuple[str, int, int]] = {
    "pending": ("Endpoint is pending", 0, 1),
    "initializing": ("Endpoint is initializing", 0, 1),
    "updating": ("Endpoint is updating", 0, 1),
    "updateFailed": ("Endpoint failed to update", 0, 1),
    "running": ("Endpoint is ready", 1, 1),
    "paused": ("Endpoint is paused", 0, 0),
    "failed": ("Endpoint failed to start", 0, 1),
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

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Start:
    began_at: float
    pending_for: float
    phase: str  # "initializing" or "updating"


class EndpointRecord:
    """An endpoint of the simulated namespace; every read goes through the clock's `now`."""

    def __init__(self, name: str, spec: dict[str, Any], *, now: float, state: str, cold_start: float) -> None:
        self.name = name
        self.spec = spec
        self.created_at = now
        self.faults = EndpointFaults(cold_start=cold_start)
        self._state = state
        self._since = now
        self._start: _Start | None = None
        self._changed = asyncio.Event()
        self.set_state(state, now)

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced by a fresh event) whenever the state or the cold start is changed."""
        return self._changed

    def ready_at(self) -> float | None:
        """When the start under way completes, or None when nothing is starting."""
        start = self._start
        if start is None:
            return None
        return start.began_at + start.pending_for + self.faults.cold_start

    def state(self, now: float) -> str:
        self._settle(now)
        start = self._start
        if start is None:
            return self._state
        return "pending" if now - start.began_at < start.pending_for else start.phase

    def updated_at(self, now: float) -> float:
        self._settle(now)
        start = self._start
        if start is not None and now - start.began_at >= start.pending_for:
            return start.began_at + start.pending_for
        return self._since

    def begin_start(self, now: float, *, pending_for: float = 0.0, phase: str = "initializing") -> None:
        """Begin a cold start (optionally preceded by `pending_for` seconds of `pending`)."""
        self._start = _Start(began_at=now, pending_for=pending_for, phase=phase)
        self._state = phase
        self._since = now
        self._notify()

    def set_state(self, state: str, now: float) -> None:
        """Put the endpoint in `state` now; a transitional state starts the timer towards `running`."""
        if state in _TRANSITIONAL:
            pending_for = PENDING_SECONDS if state == "pending" else 0.0
            phase = "updating" if state == "updating" else "initializing"
            self.begin_start(now, pending_for=pending_for, phase=phase)
            return
        self._state = state
        self._since = now
        self._start = None
        self._notify()

    def set_cold_start(self, seconds: float) -> None:
        self.faults.cold_start = seconds
        self._notify()

    def release_waiters(self) -> None:
        """Wake everything waiting on this record, e.g. because it is being removed."""
        self._notify()

    def touch(self, now: float) -> None:
        """Record a configuration change (the state stays as it is)."""
        self._settle(now)
        if self._start is None:
            self._since = now

    def _settle(self, now: float) -> None:
        ready = self.ready_at()
        if ready is not None and now >= ready:
            self._state = "running"
            self._since = ready
            self._start = None

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
    url = None if state == "paused" else f"{base_url}/endpoints/{record.name}"
    return {
        "name": record.name,
        **record.spec,
        "status": {
            "state": state,
            "createdAt": iso_time(record.created_at),
            "updatedAt": iso_time(record.updated_at(now)),
            "message": message,
            "url": url,
            "readyReplica": ready,
            "targetReplica": target,
        },
    }
