"""The live record of one endpoint inside the manager, and the state derived from it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from crazy_gary.core.adaptive import AdaptiveIdle
from crazy_gary.core.breaker import CircuitBreaker
from crazy_gary.core.changes import Changes, Counted
from crazy_gary.core.costs import price_for
from crazy_gary.core.gate import ConcurrencyGate
from crazy_gary.core.ports import PersistedEndpoint, UpstreamEndpoint
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import HF_ASLEEP, HF_FAILED, EndpointStatus, EndpointView, HfState, status_from_hf
from crazy_gary.core.views import endpoint_view

_COLD_START_GUESS = 300.0  # seconds, until the endpoint's own cold start has been measured

__all__ = ["Endpoint", "Operation"]

Operation = Literal["wake", "sleep"]


@dataclass(eq=False)
class Endpoint(Counted):
    """Everything the manager knows about one endpoint. Its fields are written only by its own
    methods (the changes below), which the manager, the poller, the lease and replica sync call;
    each write counts in `changes` (shared by the manager's endpoints)."""

    spec: EndpointSpec
    auto_sleep: float
    wake_timeout: float
    breaker: CircuitBreaker
    gate: ConcurrencyGate  # its max_concurrency: the requests on it at once, and those queued
    live_prices: dict[str, float] = field(default_factory=dict)  # shared by the manager's endpoints
    adaptive: AdaptiveIdle | None = None  # the learnt idle time, for `auto_sleep = "adaptive"`
    last_arrival: float | None = None  # wall time a request last asked for it (for adaptive)
    awake_until: float | None = None  # woken ahead of a predicted return: not put to sleep before
    slept_by: str | None = None  # the actor of the last sleep since the last wake (None: HF's own timer)
    upstream: UpstreamEndpoint | None = None
    reachable: bool = False
    seen: bool = False
    healthy: bool = False  # the health route answered 200 since HF last reported the endpoint running
    loading_since: float | None = None  # wall time HF was first read running while unhealthy
    replicas_before_pause: tuple[int, int] | None = None  # (min, max) before crazy-gary paused it
    operation: Operation | None = None
    task: asyncio.Task[None] | None = None
    failure: str | None = None
    timed_out: bool = False
    last_error: str | None = None
    poll_error: str | None = None
    last_activity: float | None = None
    wake_time: float | None = None
    sleep_time: float | None = None
    running_since: float | None = None
    in_flight: int = 0
    in_flight_elsewhere: int = 0  # through the other replicas, as last told
    busy_since: float | None = None  # wall time the requests in flight here began to be
    busy_seconds: float = 0.0  # time with a request in flight here, busy_since's stretch not yet in
    pending: int = 0
    cold_start: float | None = None
    first_seen: float | None = None
    operation_actor: str | None = None
    request_id: str | None = None
    reported: tuple[str, str | None] | None = None  # (status, hf_state) last told to observers
    keep_running_since: bool = False  # restored after a restart: the first `running` is not a new start
    recover: tuple[str, str | None] | None = None  # (operation, actor) in progress when we stopped
    # The ticket current when the last reading was applied: a question asked before that answer came
    # may have been answered from an older state (questions run concurrently at HF), so it is dropped.
    ticket: int = 0
    observed_at: float | None = None  # wall time of the question whose answer is applied (here or shared)
    _updated: asyncio.Event = field(default_factory=asyncio.Event)
    changes: Changes | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def hf_state(self) -> str | None:
        return self.upstream.state if self.upstream and self.reachable else None

    @property
    def inference_url(self) -> str | None:
        """Where inference requests go: HF's `status.url`, or the unmanaged endpoint's address."""
        if not self.spec.managed:
            return self.spec.inference_url
        return self.upstream.url if self.upstream else None

    @property
    def ran_when_last_read(self) -> bool:
        """HF cannot be read now (`unknown`), but its last answer had the endpoint running, its
        model loaded: requests still go to it, since answering does not need the management API
        (their own failures open its circuit breaker)."""
        upstream = self.upstream
        return (
            self.spec.managed
            and not self.reachable
            and self.operation is None
            and self.failure is None
            and self.healthy
            and upstream is not None
            and upstream.state == HfState.RUNNING
        )

    @property
    def hf_failure(self) -> str | None:
        """Hugging Face's own word on an endpoint it reports failed, as a sentence; None otherwise."""
        state = self.hf_state
        if state not in HF_FAILED:
            return None
        said = self.upstream.message if self.upstream else None
        return f"Hugging Face reports the endpoint {state}" + (f": {said.rstrip('.')}." if said else ".")

    @property
    def hf_running(self) -> bool:
        return self.hf_state == HfState.RUNNING

    @property
    def ready(self) -> bool:
        """HF says `running` and the health route answered since: the model has loaded."""
        return self.hf_running and self.healthy

    @property
    def going_to_sleep(self) -> bool:
        """A sleep runs, or one a previous run left unfinished is about to be carried out."""
        return self.operation == "sleep" or (self.recover is not None and self.recover[0] == "sleep")

    @property
    def health_route(self) -> str:
        return self.upstream.health_route if self.upstream else "/health"

    @property
    def hf_sleeping(self) -> bool:
        return self.hf_state in HF_ASLEEP

    def updated(self) -> asyncio.Event:
        """An event set at the next change of this endpoint (take it before reading the state)."""
        return self._updated

    def notify(self) -> None:
        """Wake everyone waiting on this endpoint's next change."""
        previous, self._updated = self._updated, asyncio.Event()
        previous.set()

    def status(self) -> EndpointStatus:
        """Derived from HF's state, the operation in progress and a failed wake (README, "States")."""
        if not self.spec.managed:
            return EndpointStatus.RUNNING if self.reachable else EndpointStatus.UNKNOWN
        if self.operation == "wake" and not self.ready:
            return EndpointStatus.STARTING
        if self.operation == "sleep" and not self.hf_sleeping:
            return EndpointStatus.STOPPING
        if self.failure is not None and not self.ready:
            return EndpointStatus.ERROR
        if not self.reachable:
            return EndpointStatus.UNKNOWN
        status = status_from_hf(self.hf_state)
        if status is EndpointStatus.RUNNING and not self.healthy:
            return EndpointStatus.STARTING  # running at HF, but the model is still loading
        return status

    # -- changes: the only writers of this record's fields --------------------------------------
    def apply_reading(
        self,
        upstream: UpstreamEndpoint | None,
        error: str | None,
        *,
        ticket: int,
        observed_at: float,
        answered: int,
    ) -> bool:
        """What the management API said of this endpoint (None: it could not say), for a question
        asked at wall time `observed_at` with `ticket` and answered when the tickets were at
        `answered`; False, and nothing changed, for a question asked before the last applied answer
        came (a slow list overtaken by a pause, or a list read just before the pause took effect)."""
        if ticket < self.ticket:
            return False
        self.ticket, self.observed_at = answered, observed_at
        self.seen = True
        self.reachable = upstream is not None
        if upstream is not None:
            self.upstream = upstream
            if upstream.state != HfState.RUNNING:
                self.healthy = False  # a replica that starts again must load its model again
            if not self.hf_running or self.healthy:
                self.loading_since = None
            elif self.loading_since is None:
                self.loading_since = observed_at
        self.poll_error = error
        return True

    def mark_healthy(self) -> bool:
        """Its health route answered 200: the model has loaded (False when HF no longer runs it)."""
        if not self.hf_running:
            return False
        self.healthy, self.loading_since = True, None
        return True

    def apply_probe(self, healthy: bool, error: str | None) -> None:
        """An unmanaged endpoint's health route answered (or not)."""
        self.seen, self.reachable, self.poll_error = True, healthy, error

    def request_arrived(self, now: float) -> None:
        """A request asked for this endpoint (served by it or not): what adaptive auto-sleep learns from."""
        if self.adaptive is not None:
            self.adaptive.observe_arrival(now, self._idle_since())
            self.last_arrival = now

    def learn_from(self, arrivals: list[tuple[float, int]]) -> None:
        """Requests from before a restart (the store's request history, per second), oldest first."""
        if self.adaptive is not None:
            self.adaptive.learn_history(arrivals)

    def _idle_since(self) -> float | None:
        """Wall time this endpoint last had activity or a request, when none is in flight here."""
        began = max(self.last_activity or 0.0, self.last_arrival or 0.0)
        return began if began and self.in_flight == 0 else None

    def request_began(self, now: float) -> None:
        if self.in_flight == 0:
            self.busy_since = now
        self.in_flight += 1
        self.last_activity = now

    def request_ended(self, now: float) -> None:
        self.in_flight -= 1
        self.last_activity = now
        if self.in_flight == 0 and self.busy_since is not None:
            self.busy_seconds += max(0.0, now - self.busy_since)
            self.busy_since = None

    def busy_through(self, now: float) -> float:
        """Seconds so far with at least one of this replica's requests in flight here (a request's
        lease begins when it is sent: a hold for a cold start is not busy)."""
        ongoing = 0.0 if self.busy_since is None else max(0.0, now - self.busy_since)
        return self.busy_seconds + ongoing

    def take_presence(self, in_flight_elsewhere: int, last_activity: float | None) -> tuple[bool, bool]:
        """What the other replicas told: (whether the requests in flight through them changed,
        whether their last activity is newer than ours)."""
        moved = in_flight_elsewhere != self.in_flight_elsewhere
        self.in_flight_elsewhere = in_flight_elsewhere
        newer = last_activity is not None and (
            self.last_activity is None or last_activity > self.last_activity
        )
        if newer:
            assert last_activity is not None
            self._returned_elsewhere(last_activity)
            self.last_activity = last_activity
        return moved, newer

    def _returned_elsewhere(self, at: float) -> None:
        """Another replica's activity at `at`: after a long pause, a return this replica did not
        route, which adaptive auto-sleep learns all the same (the leader wakes ahead)."""
        if self.adaptive is not None:
            self.adaptive.observe_return_elsewhere(at, self._idle_since())

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Count a request held while waiting for this endpoint."""
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    def report(self, reported: tuple[str, str | None]) -> bool:
        """Whether (status, HF state) differs from what observers were last told; now it is told."""
        if reported == self.reported:
            return False
        self.reported = reported
        return True

    def remember_counts_before_pause(self) -> None:
        """Before crazy-gary pauses it: its replica counts, unless a put-back is still owed."""
        before = self.upstream
        if before is not None and before.max_replica and self.replicas_before_pause is None:
            self.replicas_before_pause = (before.min_replica or 0, before.max_replica)

    def counts_put_back(self) -> None:
        self.replicas_before_pause = None

    def take_recovery(self) -> tuple[str, str | None] | None:
        """The operation a previous run left unfinished, once."""
        recover, self.recover = self.recover, None
        return recover

    def begin_operation(
        self,
        operation: Operation,
        actor: str,
        request_id: str | None,
        now: float,
        task: asyncio.Task[None] | None = None,
    ) -> None:
        """A wake or sleep begins at wall time `now`, run by `task`: what a previous one left is cleared."""
        self.task = task
        self.operation, self.operation_actor, self.request_id = operation, actor, request_id
        self.recover = self.failure = self.last_error = None
        self.timed_out = False
        if operation == "wake":
            self.wake_time, self.slept_by = now, None
        else:
            self.sleep_time, self.slept_by = now, actor

    def end_operation(self, error: str | None, *, timed_out: bool = False) -> None:
        """The operation under way ended, with `error` if it failed (a failed wake marks the endpoint)."""
        if error is not None:
            self.last_error = error
            if self.operation == "wake":
                self.failure, self.timed_out = error, timed_out
        self.operation = self.operation_actor = None
        self.task = None

    def note_change(self, before: EndpointStatus, after: EndpointStatus, now: float) -> bool:
        """Keep the times a change from `before` to `after` at wall time `now` implies: first seen,
        running since, the cold start (measured to readiness). True when it just became running."""
        if self.first_seen is None and self.seen:
            self.first_seen = now
        became_running = after is EndpointStatus.RUNNING and before is not EndpointStatus.RUNNING
        if became_running:
            # still set only when nothing but `running` (loading, then ready) was seen since a restart
            if not self.keep_running_since or self.running_since is None:
                self.running_since = now
            if self.operation == "wake" and self.wake_time is not None:
                self.cold_start = self.running_since - self.wake_time
        loading = self.hf_running and not self.healthy
        if self.seen and after is not EndpointStatus.UNKNOWN and not loading:
            self.keep_running_since = False
        return became_running

    def sleep_due(self) -> float | None:
        """Wall time at which auto-sleep is due, or None when it does not apply now."""
        if not self.spec.managed or self.auto_sleep <= 0 or self.operation is not None:
            return None
        if self.status() is EndpointStatus.RUNNING and self.running_since is not None:
            since = self.running_since
        elif self.loading_since is not None and self.hf_running and not self.healthy:
            since = self.loading_since  # billed while its model loads, however long that takes
        else:
            return None
        began = max(since, self.last_activity or 0.0)
        due = max(began + self.idle_time(began), self.awake_until or 0.0)
        warm_until = self.spec.warm.warm_until(due) if self.spec.warm is not None else None
        return due if warm_until is None else warm_until  # not put to sleep inside a warm window

    def idle_time(self, began: float) -> float:
        """Seconds without a request before auto-sleep, for idleness that began at `began`: the
        fixed timer, or what the endpoint's own gaps call for (`crazy_gary.core.adaptive`)."""
        if self.adaptive is None:
            return self.auto_sleep
        learnt = self.adaptive.idle_time(began, self.expected_cold_start())
        if learnt is None:  # too little history: the fixed timer, within the bounds all the same
            bounds = self.adaptive.settings
            return min(max(self.auto_sleep, bounds.minimum), bounds.maximum)
        return learnt

    def expected_cold_start(self) -> float:
        """Seconds a wake should take to running: the last measured, else a guess."""
        return self.cold_start if self.cold_start is not None else _COLD_START_GUESS

    def load_problem(self, now: float) -> str | None:
        """Why an endpoint HF reports running has not counted as running for longer than a wake may take."""
        if self.loading_since is None or now - self.loading_since < self.wake_timeout:
            return None
        return (
            f"Hugging Face reports the endpoint running, but its health route {self.health_route} has "
            f"not answered 200 for {now - self.loading_since:.0f} s; no request is sent to it meanwhile."
        )

    def ready_in(self, now: float) -> float | None:
        """Seconds from wall time `now` until a starting endpoint should run, judged by its last cold
        start (half the wake timeout before the first); None unless it is starting."""
        if self.status() is not EndpointStatus.STARTING or self.wake_time is None:
            return None
        expected = self.cold_start if self.cold_start is not None else self.wake_timeout / 2
        return max(expected - (now - self.wake_time), 1.0)

    @property
    def price_per_hour(self) -> float | None:
        """The TOML file's price, else HF's live price for the instance, else HF's published list."""
        if self.spec.price_per_hour is not None:
            return self.spec.price_per_hour
        instance = self.upstream.instance if self.upstream else None
        live = self.live_prices.get(instance) if instance else None
        return live if live is not None else price_for(instance)

    def restore(self, memory: PersistedEndpoint) -> None:
        """Take back the times and the operation in progress from before a restart."""
        self.last_activity = memory.last_activity
        self.wake_time = memory.wake_time
        self.sleep_time = memory.sleep_time
        self.running_since = memory.running_since
        self.keep_running_since = memory.running_since is not None
        self.cold_start = memory.cold_start
        self.first_seen = memory.first_seen
        if memory.operation in ("wake", "sleep"):
            self.recover = (memory.operation, memory.operation_actor)

    def memory(self) -> PersistedEndpoint:
        """What to keep of this endpoint across a restart."""
        operation = self.operation or (self.recover[0] if self.recover else None)
        actor = self.operation_actor or (self.recover[1] if self.recover else None)
        return PersistedEndpoint(
            last_activity=self.last_activity,
            wake_time=self.wake_time,
            sleep_time=self.sleep_time,
            running_since=self.running_since
            if self.keep_running_since or self.status() is EndpointStatus.RUNNING
            else None,
            operation=operation,
            operation_actor=actor,
            cold_start=self.cold_start,
            first_seen=self.first_seen,
        )

    def view(self, now: float) -> EndpointView:
        """A frozen picture of this endpoint at wall time `now`."""
        return endpoint_view(self, now)
