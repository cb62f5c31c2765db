"""The background work of a wake or a sleep: ask Hugging Face, then wait for the state to follow."""

from __future__ import annotations

from collections.abc import Callable

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.poller import StatusPoller
from crazy_gary.core.ports import Alone, Coordination, ManagementAPI, UpstreamEndpoint
from crazy_gary.core.scaling import ScalingKeeper
from crazy_gary.core.status import HF_ASLEEP, HF_FAILED, HfState
from crazy_gary.errors import ManagementError, ManagementUnavailable

__all__ = ["DRAIN_TIMEOUT", "WAKE_NUDGE", "OperationFailed", "OperationRunner"]

DRAIN_TIMEOUT = 60.0
WAKE_NUDGE = 5.0  # seconds a health request has to start a scaled-to-zero endpoint before inference is sent
_STOPPED = HF_ASLEEP | HF_FAILED  # states a wake must start


class OperationRunner:
    """Runs wakes and sleeps for the manager; raises ManagementError or OperationFailed.

    What a wake sends to start an endpoint (`health`, `inference`, `resume`) is appended to the
    caller's `sent` list and told to `on_sent`, for the audit log and the metrics.
    """

    def __init__(
        self,
        management: ManagementAPI,
        poller: StatusPoller,
        clock: Clock,
        sleep_mode: str,
        coordination: Coordination | None = None,
        *,
        scaling: ScalingKeeper | None = None,
        on_sent: Callable[[Endpoint, str], None] | None = None,
    ) -> None:
        self._management = management
        self._coordination = coordination or Alone()
        self._poller = poller
        self._clock = clock
        self._sleep_mode = sleep_mode
        self._scaling = scaling
        self._on_sent = on_sent

    async def wake(self, endpoint: Endpoint, sent: list[str]) -> None:
        namespace, name = _address(endpoint)
        deadline = self._clock.monotonic() + endpoint.wake_timeout
        await self._start_upstream(endpoint, namespace, name, deadline, sent)
        while True:
            updated = endpoint.updated()
            if endpoint.ready:
                break
            if endpoint.hf_state in HF_FAILED:
                raise OperationFailed(f"Endpoint {endpoint.key} failed while starting ({endpoint.hf_state}).")
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise OperationFailed(
                    f"Endpoint {endpoint.key} did not start within {endpoint.wake_timeout:g} seconds.",
                    timed_out=True,
                )
            await wait_event(self._clock, updated, remaining)
        scaling = self._scaling
        if (
            "resume" in sent
            and scaling
            and await scaling.restore_after_resume(endpoint, endpoint.replicas_before_pause)
        ):
            endpoint.counts_put_back()  # kept until then, for the next resume

    async def _start_upstream(
        self, endpoint: Endpoint, namespace: str, name: str, deadline: float, sent: list[str]
    ) -> None:
        """Ask HF to start the endpoint; a passing fault of the management API is tried again."""
        while True:
            try:
                ticket = self._poller.ticket()
                current = await self._management.get(namespace, name)
                self._poller.apply(endpoint, current, ticket)
                if current.state not in _STOPPED:
                    return  # starting or running already: the state will follow
                if not await self._coordination.claim_wake(endpoint.key):
                    # another replica asked a moment ago: read the state again, shortly
                    if self._clock.monotonic() >= deadline:
                        return
                    await self._clock.sleep(self._poller.fast_interval)
                    continue
                if current.state == HfState.SCALED_TO_ZERO and current.url:
                    await self._start_scaled_to_zero(endpoint, current, deadline, sent)
                else:
                    ticket = self._poller.ticket()
                    self._tell(endpoint, sent, "resume")
                    self._poller.apply(endpoint, await self._management.resume(namespace, name), ticket)
                return
            except ManagementError as exc:
                if not _transient(exc) or self._clock.monotonic() >= deadline:
                    raise
            await self._clock.sleep(self._poller.fast_interval)

    async def _start_scaled_to_zero(
        self, endpoint: Endpoint, current: UpstreamEndpoint, deadline: float, sent: list[str]
    ) -> None:
        """A GET of the health route first; when HF has not started the endpoint a few seconds later
        (it does not say that a health request counts as traffic), a request that surely does."""
        assert current.url is not None
        self._tell(endpoint, sent, "health")
        await self._management.poke(current.url, current.health_route)
        nudge_until = min(deadline, self._clock.monotonic() + WAKE_NUDGE)
        while endpoint.hf_state is None or endpoint.hf_state == HfState.SCALED_TO_ZERO:
            updated = endpoint.updated()
            remaining = nudge_until - self._clock.monotonic()
            if remaining <= 0:
                self._tell(endpoint, sent, "inference")
                await self._management.send_inference(current.url, current.name)
                return
            await wait_event(self._clock, updated, remaining)

    def _tell(self, endpoint: Endpoint, sent: list[str], what: str) -> None:
        sent.append(what)
        if self._on_sent is not None:
            self._on_sent(endpoint, what)

    async def sleep(self, endpoint: Endpoint, sent: list[str]) -> None:
        namespace, name = _address(endpoint)
        drain_deadline = self._clock.monotonic() + DRAIN_TIMEOUT
        while endpoint.in_flight + endpoint.in_flight_elsewhere > 0:  # here, and as the others last told
            updated = endpoint.updated()
            remaining = drain_deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            await wait_event(self._clock, updated, remaining)
        ticket = self._poller.ticket()
        if self._sleep_mode == "pause":
            endpoint.remember_counts_before_pause()  # a pause sets both to 0, a resume both to 1
            upstream = await self._management.pause(namespace, name)
        else:
            upstream = await self._management.scale_to_zero(namespace, name)
        self._poller.apply(endpoint, upstream, ticket)
        deadline = self._clock.monotonic() + endpoint.wake_timeout
        while not endpoint.hf_sleeping:
            updated = endpoint.updated()
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise OperationFailed(
                    f"Endpoint {endpoint.key} did not stop within {endpoint.wake_timeout:g} s."
                )
            await wait_event(self._clock, updated, remaining)


class OperationFailed(Exception):
    """An operation ended without reaching its state; the message is shown to users."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def _transient(exc: ManagementError) -> bool:
    return isinstance(exc, ManagementUnavailable)


def _address(endpoint: Endpoint) -> tuple[str, str]:
    spec = endpoint.spec
    assert spec.namespace is not None and spec.name is not None, "only managed endpoints are operated"
    return spec.namespace, spec.name
