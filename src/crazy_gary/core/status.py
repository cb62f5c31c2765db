"""Endpoint states (the README's "States"), Hugging Face's own, and the view of one endpoint that
every interface shows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["HF_ASLEEP", "HF_FAILED", "EndpointStatus", "EndpointView", "HfState", "status_from_hf"]


class EndpointStatus(StrEnum):
    """crazy-gary's state of an endpoint."""

    RUNNING = "running"
    SLEEPING = "sleeping"
    STARTING = "starting"
    STOPPING = "stopping"
    ERROR = "error"
    UNKNOWN = "unknown"


class HfState(StrEnum):
    """Hugging Face's `status.state` of an endpoint, spelt as its API spells it.

    What HF reports stays a plain `str` (`UpstreamEndpoint.state`), so that a state added later is
    `unknown` rather than a crash; it is compared with these members, which equal their strings.
    """

    PENDING = "pending"
    INITIALIZING = "initializing"
    UPDATING = "updating"
    UPDATE_FAILED = "updateFailed"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    SCALED_TO_ZERO = "scaledToZero"


#: HF's states of an endpoint that sleeps: one that scaled to zero, or that was paused.
HF_ASLEEP = frozenset({HfState.SCALED_TO_ZERO.value, HfState.PAUSED.value})
#: HF's states of an endpoint that failed: to start, or to take a change.
HF_FAILED = frozenset({HfState.FAILED.value, HfState.UPDATE_FAILED.value})

_FROM_HF: dict[str, EndpointStatus] = {
    HfState.RUNNING.value: EndpointStatus.RUNNING,
    HfState.SCALED_TO_ZERO.value: EndpointStatus.SLEEPING,
    HfState.PAUSED.value: EndpointStatus.SLEEPING,
    HfState.PENDING.value: EndpointStatus.STARTING,
    HfState.INITIALIZING.value: EndpointStatus.STARTING,
    HfState.UPDATING.value: EndpointStatus.STARTING,
    HfState.FAILED.value: EndpointStatus.ERROR,
    HfState.UPDATE_FAILED.value: EndpointStatus.ERROR,
}


def status_from_hf(hf_state: str | None) -> EndpointStatus:
    """Map HF's `status.state` to ours; anything unexpected is `unknown`."""
    if hf_state is None:
        return EndpointStatus.UNKNOWN
    return _FROM_HF.get(hf_state, EndpointStatus.UNKNOWN)


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else math.floor(seconds)


@dataclass(frozen=True)
class EndpointView:
    """One endpoint as the REST API, the CLI and HarmonyClient show it."""

    key: str
    status: EndpointStatus
    url: str
    last_activity: float | None
    wake_time: float | None
    sleep_time: float | None
    auto_sleep_in: float | None
    hf_state: str | None
    name: str | None
    namespace: str | None
    model: str | None
    instance: str | None
    price_per_hour: float | None
    managed: bool
    in_flight: int
    pending: int
    circuit: str
    operation: str | None
    error: str | None
    timed_out: bool = False
    hf_message: str | None = None
    hf_scale_to_zero_timeout: int | None = None
    warm_until: float | None = None  # the end of the warm window it is in (wall time)
    task: str | None = None
    max_concurrency: int | None = None
    queued: int = 0  # requests waiting for a free slot under max_concurrency

    def to_dict(self) -> dict[str, Any]:
        """The endpoint object of the README's "REST API": status, url, the three times and
        auto_sleep_in first, as the first version had them; times as integer seconds."""
        return {
            "status": self.status.value,
            "url": self.url,
            "last_activity": _whole(self.last_activity),
            "wake_time": _whole(self.wake_time),
            "sleep_time": _whole(self.sleep_time),
            "auto_sleep_in": _whole(self.auto_sleep_in),
            "hf_state": self.hf_state,
            "name": self.name,
            "namespace": self.namespace,
            "model": self.model,
            "task": self.task,
            "instance": self.instance,
            "price_per_hour": self.price_per_hour,
            "managed": self.managed,
            "in_flight": self.in_flight,
            "pending": self.pending,
            "max_concurrency": self.max_concurrency,
            "queued": self.queued,
            "circuit": self.circuit,
            "operation": self.operation,
            "error": self.error,
            "hf_message": self.hf_message,
            "hf_scale_to_zero_timeout": self.hf_scale_to_zero_timeout,
            "warm_until": _whole(self.warm_until),
        }
