"""Everything the simulator knows: the endpoints, the call counts, the faults and the dice."""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any

from crazy_gary.clock import Clock

from ._catalog import seed_endpoints
from ._config import SimulatorConfig
from ._state import EndpointRecord

__all__ = ["CALL_KINDS", "ManagementFaults", "World"]

#: The per-endpoint counters of `GET /_sim/calls`, in the order they are shown.
CALL_KINDS = ("get", "resume", "pause", "scale-to-zero", "update", "delete", "inference", "health", "starts")

# States whose replicas are billed, for the accelerator quota of `GET /provider/{ns}`.
_BILLING_STATES = frozenset({"initializing", "updating", "running"})


@dataclass
class ManagementFaults:
    """Faults of the management API itself."""

    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: float = 0.0
    malformed_rate: float = 0.0
    retry_after: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class World:
    """The simulated namespace and the simulator's own bookkeeping; :meth:`reset` restores the start."""

    def __init__(self, config: SimulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        # createdBy / updatedBy of every endpoint: a stable id, as a Hub account has one
        digest = hashlib.sha256(config.namespace.encode()).hexdigest()[:24]
        self.account = {"id": digest, "name": config.namespace}
        self.records: dict[str, EndpointRecord] = {}
        self.closed = False
        self.reset()

    def close(self) -> None:
        """The server is stopping: release every held request (they answer 503) instead of cancelling them."""
        self.closed = True
        for record in self.records.values():
            record.release_waiters()

    def reset(self) -> None:
        """Put every endpoint, setting, counter and the random generator back as at start."""
        for record in self.records.values():
            record.release_waiters()  # requests held on the old records find them gone
        now = self.clock.now()
        self.rng = random.Random(self.config.seed)
        self.management = ManagementFaults()
        self.records = {
            name: self._record(name, spec, now, state)
            for name, (spec, state) in seed_endpoints(self.config.initial_state).items()
        }
        self.calls: dict[str, dict[str, int]] = {name: _zero_counts() for name in self.records}
        self.list_calls = 0

    def now(self) -> float:
        return self.clock.now()

    def count(self, name: str, kind: str) -> None:
        self.calls.setdefault(name, _zero_counts())[kind] += 1

    def roll(self, rate: float) -> bool:
        """True with probability `rate`, from the app's seeded generator."""
        return rate > 0 and self.rng.random() < rate

    def start(self, record: EndpointRecord) -> None:
        """Begin a start of `record` now (`pending`, then its cold start), and count it."""
        record.begin_start(self.now())
        self.count(record.name, "starts")

    def create(self, name: str, spec: dict[str, Any]) -> EndpointRecord:
        """Add an endpoint that is `pending` for a second, then initializes."""
        now = self.now()
        record = self._record(name, spec, now, "scaledToZero")
        record.begin_start(now)
        self.records[name] = record
        self.calls.setdefault(name, _zero_counts())
        self.count(name, "starts")
        return record

    def _record(self, name: str, spec: dict[str, Any], now: float, state: str) -> EndpointRecord:
        config = self.config
        return EndpointRecord(
            name,
            spec,
            now=now,
            state=state,
            cold_start=config.cold_start,
            minute=config.minute,
            account=self.account,
        )

    def add_asleep(self, name: str, like: str) -> EndpointRecord:
        """Add an endpoint called `name`, scaled to zero, configured as the endpoint `like` is."""
        record = self._record(name, copy.deepcopy(self.records[like].spec), self.now(), "scaledToZero")
        self.records[name] = record
        self.calls.setdefault(name, _zero_counts())
        return record

    def delete(self, name: str) -> None:
        self.records.pop(name).release_waiters()  # requests held on it find it gone

    def calls_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {name: dict(counts) for name, counts in self.calls.items()}
        answer["_list"] = self.list_calls
        return answer

    def accelerators_in_use(self) -> list[tuple[str, int]]:
        """(instanceType, accelerators) of every endpoint that has a billed replica now."""
        now = self.now()
        used = []
        for record in self.records.values():
            if record.state(now) in _BILLING_STATES:
                compute = record.spec["compute"]
                size = str(compute.get("instanceSize", "x1")).lstrip("x")
                used.append((str(compute["instanceType"]), int(size) if size.isdigit() else 1))
        return used


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(CALL_KINDS, 0)
