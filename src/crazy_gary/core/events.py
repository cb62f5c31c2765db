"""What the manager tells: the result of asking for an operation, and events for observers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from crazy_gary.core.status import EndpointStatus

__all__ = ["EventKind", "ManagerEvent", "OperationResult"]

#: "operation" (accepted), "operation_done", "operation_unchanged" (a wake or sleep that found the
#: endpoint already there or on its way: `status` says where), "state" (a change of crazy-gary's or
#: HF's state), "wake_request" (what a wake sent to start the endpoint, in `operation`),
#: "circuit_open" (this replica's failures opened the endpoint's circuit breaker)
EventKind = Literal[
    "operation", "operation_done", "operation_unchanged", "state", "wake_request", "circuit_open"
]


@dataclass(frozen=True)
class OperationResult:
    """What a wake or sleep request did: `started` is False when nothing needed doing or one was running."""

    key: str
    status: EndpointStatus
    started: bool


@dataclass(frozen=True)
class ManagerEvent:
    """Something observers may want to know: an operation's start or end, or a state change."""

    kind: EventKind
    key: str
    operation: str | None = None
    actor: str | None = None
    success: bool | None = None
    error: str | None = None
    status: str | None = None
    hf_state: str | None = None
    request_id: str | None = None
    details: Mapping[str, Any] | None = None  # what an operation did, for the audit log
    timed_out: bool = False  # an operation that failed for outliving its endpoint's wake timeout

    @classmethod
    def operation_done(
        cls,
        key: str,
        operation: str,
        actor: str,
        error: str | None,
        request_id: str | None,
        sent: list[str],
        *,
        timed_out: bool = False,
    ) -> ManagerEvent:
        """An operation's end: its error if it failed (`timed_out` when it outlived the endpoint's
        wake timeout), and what a wake sent to start the endpoint."""
        return cls(
            "operation_done",
            key,
            operation=operation,
            actor=actor,
            success=error is None,
            error=error,
            request_id=request_id,
            details={"sent": sent} if sent else None,
            timed_out=timed_out,
        )
