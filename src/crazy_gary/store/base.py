"""The Store protocol the rest of crazy-gary talks to, and the records it keeps."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from crazy_gary.core.ports import PersistedEndpoint

__all__ = ["AuditEntry", "AuditQuery", "PersistedEndpoint", "Store", "Transition", "UsageRow"]


@dataclass(frozen=True)
class Transition:
    """HF's state of an endpoint from `at` on."""

    key: str
    state: str
    at: float


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log; `actor` is a key's name or role and short hash, never the key.

    `success` is None while the operation runs. An entry with an `operation_id` is written when the
    operation is accepted and written again, with the same id, when it ends: the store completes it.
    """

    timestamp: float
    actor: str
    operation: str
    model_type: str | None
    success: bool | None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    id: int | None = None
    operation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as the audit route answers it: integer timestamp."""
        return {
            "id": self.id,
            "timestamp": int(self.timestamp),
            "actor": self.actor,
            "operation": self.operation,
            "model_type": self.model_type,
            "success": self.success,
            "error": self.error,
            "details": {**self.details, **({"request_id": self.request_id} if self.request_id else {})},
        }


@dataclass(frozen=True)
class UsageRow:
    """What one key used of one endpoint in one UTC hour (`hour`: its start, Unix seconds). The row
    of key "" holds the endpoint's busy seconds: time with a request in flight, whoever sent it."""

    hour: int
    key: str
    model_type: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_seconds: float = 0.0


@dataclass(frozen=True)
class RequestRecord:
    """Requests as the gateway saw them arrive: in the second starting at `at` (Unix seconds), to
    the endpoint `model_type`, streamed or not, how many, and the tokens their answers used: what a
    replay of the traffic needs."""

    at: float
    model_type: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    requests: int = 1


@dataclass(frozen=True)
class AuditQuery:
    """Filters of `GET /api/endpoints/audit`: newest first, `before` an entry id."""

    limit: int = 100
    before: int | None = None
    model_type: str | None = None
    operation: str | None = None


class Store(Protocol):
    """Durable storage; every method may raise `crazy_gary.errors.StoreError`."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers."""

    async def load_endpoints(self) -> dict[str, PersistedEndpoint]: ...

    async def save_endpoints(self, endpoints: dict[str, PersistedEndpoint]) -> None: ...

    async def add_transitions(self, transitions: list[Transition]) -> None: ...

    async def transitions(self, key: str) -> list[Transition]:
        """Every transition of one endpoint, oldest first."""

    async def add_audit(self, entries: list[AuditEntry]) -> None:
        """Append the entries, in order; one whose `operation_id` is already in the log (or earlier in
        `entries`) completes that entry instead: its success, error and details (whichever replica
        wrote it). All or nothing: a batch that failed may be written again."""

    async def audit(self, query: AuditQuery) -> list[AuditEntry]: ...

    async def prune_audit(self, before: float) -> int:
        """Delete audit entries older than `before`; how many went."""

    async def add_usage(self, rows: list[UsageRow]) -> None:
        """Add each row's counts to the stored row of the same hour, key and endpoint (replicas add
        to the same rows)."""

    async def usage(self, since: float, until: float) -> list[UsageRow]:
        """The rows of the hours that overlap [since, until)."""

    async def tokens_used(self, key: str, since: float) -> int:
        """Tokens (prompt and completion) `key` used in the hours from the one holding `since` on."""

    async def add_requests(self, records: list[RequestRecord]) -> None:
        """Append the records (each replica its own)."""

    async def requests(
        self, since: float, until: float, model_types: Collection[str] | None = None
    ) -> list[RequestRecord]:
        """The records of requests that arrived within [since, until), oldest first; only those of
        the endpoints `model_types` when given."""

    async def prune_requests(self, before: float) -> int:
        """Delete requests that arrived before `before`; how many went."""
