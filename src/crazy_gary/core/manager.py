"""HuggingFaceEndpointManager: status, single-flight wake, sleep, activity and request leases.

Operations return at once and finish in background tasks owned by the manager. Status is learnt
by one poller per namespace (`crazy_gary.core.poller`); callers only ever read the cached state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.adaptive import AdaptiveIdle
from crazy_gary.core.autosleep import AutoSleeper
from crazy_gary.core.breaker import CircuitBreaker
from crazy_gary.core.changes import Changes
from crazy_gary.core.endpoint import Endpoint, Operation
from crazy_gary.core.events import ManagerEvent, OperationResult
from crazy_gary.core.gate import ConcurrencyGate, Slot
from crazy_gary.core.lease import Lease
from crazy_gary.core.operations import OperationFailed, OperationRunner
from crazy_gary.core.poller import StatusPoller
from crazy_gary.core.ports import Coordination, ManagementAPI, PersistedEndpoint
from crazy_gary.core.replicas import ReplicaSync
from crazy_gary.core.restarts import live_prices
from crazy_gary.core.scaling import IdleTimerSetting, ScalingKeeper
from crazy_gary.core.side_tasks import start_side_tasks
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus, EndpointView
from crazy_gary.core.supervisor import ErrorHook, Supervisor, stop
from crazy_gary.errors import EndpointNotFound, ManagementError

if TYPE_CHECKING:
    from crazy_gary.config import Settings

__all__ = ["HuggingFaceEndpointManager", "ManagerEvent", "OperationResult"]

logger = logging.getLogger(__name__)


class HuggingFaceEndpointManager:
    """Owns every configured endpoint's live record and the tasks that change it."""

    def __init__(
        self,
        specs: Iterable[EndpointSpec],
        management: ManagementAPI,
        clock: Clock,
        *,
        wake_timeout: float = 300.0,
        auto_sleep: float = 900.0,
        sleep_mode: str = "scale_to_zero",
        poll_interval: float = 10.0,
        poll_fast_interval: float = 1.0,
        breaker_failures: int = 5,
        breaker_cooldown: float = 30.0,
        coordination: Coordination | None = None,
        on_background_error: ErrorHook | None = None,
        hf_scale_to_zero: IdleTimerSetting = "off",
    ) -> None:
        """`hf_scale_to_zero` is what HF's own idle timer is set to (`auto`, `off` or minutes, see
        `crazy_gary.core.scaling`). `on_background_error` is told of every unexpected failure of a
        background loop (they are logged either way, and retried)."""
        self._clock = clock
        self._supervisor = Supervisor(clock, on_background_error)
        self._management = management
        self._prices: dict[str, float] = {}
        self._changes = Changes()
        self._endpoints: dict[str, Endpoint] = {
            spec.key: Endpoint(
                spec=spec,
                auto_sleep=spec.auto_sleep if spec.auto_sleep is not None else auto_sleep,
                wake_timeout=spec.wake_timeout if spec.wake_timeout is not None else wake_timeout,
                breaker=CircuitBreaker(
                    clock,
                    failures_to_open=breaker_failures,
                    cooldown=breaker_cooldown,
                    on_open=functools.partial(self._circuit_opened, spec.key),
                    changes=self._changes,
                ),
                gate=ConcurrencyGate(spec.max_concurrency, clock, self._changes.bump),
                live_prices=self._prices,
                adaptive=AdaptiveIdle(spec.adaptive) if spec.adaptive is not None else None,
                changes=self._changes,
            )
            for spec in specs
        }
        self._build_parts(
            clock, management, sleep_mode, coordination, (poll_interval, poll_fast_interval), hf_scale_to_zero
        )
        self._operations: set[asyncio.Task[None]] = set()
        self._started = False
        self._background: list[asyncio.Task[None]] = []  # recovery, prices, idle timers, wake loops

    def _build_parts(
        self,
        clock: Clock,
        management: ManagementAPI,
        sleep_mode: str,
        coordination: Coordination | None,
        poll_intervals: tuple[float, float],
        hf_scale_to_zero: IdleTimerSetting,
    ) -> None:
        """The poller, HF's scaling, the operation runner, auto-sleep and replica sync."""
        self._observers: list[Callable[[ManagerEvent], None]] = []
        endpoints = list(self._endpoints.values())
        self._poller = StatusPoller(
            endpoints,
            management,
            clock,
            interval=poll_intervals[0],
            fast_interval=poll_intervals[1],
            on_change=self._state_changed,
        )
        self._scaling = ScalingKeeper(management, self._poller, hf_scale_to_zero, self._emit)
        self._runner = OperationRunner(
            management,
            self._poller,
            clock,
            sleep_mode,
            coordination,
            scaling=self._scaling,
            on_sent=lambda endpoint, what: self._emit(
                ManagerEvent("wake_request", endpoint.key, operation=what)
            ),
        )
        self._autosleep = AutoSleeper(endpoints, clock, sleep=self._auto_sleep)
        self._sync: ReplicaSync | None = None
        if coordination is not None:
            self._sync = ReplicaSync(
                endpoints, coordination, self._autosleep, self._poller, clock, announce=self._announce_state
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        management: ManagementAPI,
        clock: Clock,
        coordination: Coordination | None = None,
        on_background_error: ErrorHook | None = None,
    ) -> HuggingFaceEndpointManager:
        """The manager as the settings describe it; `coordination` with the other replicas, if any."""
        return cls(
            settings.endpoints.values(),
            management,
            clock,
            wake_timeout=settings.wake_timeout,
            auto_sleep=settings.auto_sleep,
            sleep_mode=settings.sleep_mode,
            poll_interval=settings.poll_interval,
            poll_fast_interval=settings.poll_fast_interval,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown=settings.breaker_cooldown,
            coordination=coordination,
            on_background_error=on_background_error,
            hf_scale_to_zero=settings.hf_scale_to_zero,
        )

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the pollers and the auto-sleep reaper."""
        if not self._started:
            self._started = True
            supervisor = self._supervisor
            self._poller.start(supervisor)
            if self._sync is not None:
                await self._sync.tick()  # the lease first, so two replicas starting together do not both reap
                self._sync.start(supervisor)
            self._autosleep.start(supervisor)
            self._background = start_side_tasks(
                supervisor,
                self._endpoints.values(),
                self._clock,
                operate=self.operate,
                wake=lambda key, actor: self.wake(key, actor=actor),
                leading=lambda: self.leading,
                read_prices=self._read_prices,
                scaling=self._scaling,
                alone=self._sync is None,
            )

    async def close(self) -> None:
        """Cancel and await every background task (one that ended with an error is logged)."""
        await stop([*self._operations, *self._background])
        if self._sync is not None:
            await self._sync.close()
        await self._autosleep.close()
        await self._poller.close()

    async def __aenter__(self) -> HuggingFaceEndpointManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def subscribe(self, observer: Callable[[ManagerEvent], None]) -> None:
        """Call `observer` with every ManagerEvent (it must not block)."""
        self._observers.append(observer)

    # -- reading ------------------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return list(self._endpoints)

    @property
    def leading(self) -> bool:
        """Whether this replica runs auto-sleep (always, without other replicas)."""
        return self._autosleep.leading

    @property
    def ready(self) -> bool:
        """Every endpoint has been read once, or marked unknown."""
        return all(endpoint.seen for endpoint in self._endpoints.values())

    def resolve(self, model: str) -> str:
        """The key of the endpoint called `model`: its key, its HF name or its repository."""
        if model in self._endpoints:
            return model
        for endpoint in self._endpoints.values():
            upstream = endpoint.upstream
            if model == endpoint.spec.name or (upstream and model == upstream.repository):
                return endpoint.key
        raise EndpointNotFound(model)

    def spec(self, key: str) -> EndpointSpec:
        return self._endpoint(key).spec

    def wake_timeout(self, key: str) -> float:
        """Seconds a wake of this endpoint may take."""
        return self._endpoint(key).wake_timeout

    @property
    def revision(self) -> int:
        """A number that moves whenever anything an endpoint's view shows may have changed (but the
        passing of time: countdowns, warm windows, circuits turning half-open)."""
        return self._changes.count

    def status(self, key: str) -> EndpointView:
        """The endpoint's current view; never calls upstream and never counts as activity."""
        return self._endpoint(key).view(self._clock.now())

    def all_status(self) -> dict[str, EndpointView]:
        now = self._clock.now()
        return {key: endpoint.view(now) for key, endpoint in self._endpoints.items()}

    # -- operations ---------------------------------------------------------------------------
    def wake(self, key: str, *, actor: str = "api", request_id: str | None = None) -> OperationResult:
        """Start waking the endpoint; one wake per endpoint however many callers ask."""
        return self.operate("wake", key, actor=actor, request_id=request_id)

    def sleep(self, key: str, *, actor: str = "api", request_id: str | None = None) -> OperationResult:
        """Start putting the endpoint to sleep (by `ENDPOINT_SLEEP_MODE`), after its requests drain."""
        return self.operate("sleep", key, actor=actor, request_id=request_id)

    def operate(
        self, operation: Operation, key: str, *, actor: str = "api", request_id: str | None = None
    ) -> OperationResult:
        """Start a wake or a sleep, unless the endpoint is already there or on its way (told as an
        `operation_unchanged` event)."""
        endpoint = self._endpoint(key)
        status = endpoint.status()
        settled = EndpointStatus.RUNNING if operation == "wake" else EndpointStatus.SLEEPING
        if not endpoint.spec.managed or status is settled or endpoint.operation == operation:
            unchanged = ManagerEvent(
                "operation_unchanged",
                key,
                operation=operation,
                actor=actor,
                success=True,
                status=status.value,
                request_id=request_id,
            )
            self._emit(unchanged)
            return OperationResult(key, status, started=False)
        self._begin(endpoint, operation, actor, request_id)
        return OperationResult(key, endpoint.status(), started=True)

    async def wait_for(self, key: str, wanted: set[EndpointStatus], timeout: float) -> EndpointView:
        """Wait until the endpoint's status is one of `wanted` (or `timeout` seconds); return its view."""
        endpoint = self._endpoint(key)
        deadline = self._clock.monotonic() + timeout
        while True:
            updated = endpoint.updated()
            if endpoint.status() in wanted:
                break
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or not await wait_event(self._clock, updated, remaining):
                break
        return self.status(key)

    def endpoint(self, key: str) -> Endpoint:
        """The live record (for the router and the gateway, which read and count on it)."""
        return self._endpoint(key)

    def chain(self, key: str) -> list[str]:
        """The endpoint and its fallbacks, in order, each once."""
        chain = [key]
        while (fallback := self._endpoint(chain[-1]).spec.fallback) is not None and fallback not in chain:
            chain.append(fallback)
        return chain

    def hurry(self, key: str) -> None:
        """Poll this endpoint's state now (an answer suggested it changed)."""
        self._poller.hurry(self._endpoint(key))

    def ready_in(self, key: str) -> float | None:
        """Seconds until a starting endpoint should run, from its last cold start; None if unknown."""
        return self._endpoint(key).ready_in(self._clock.now())

    # -- requests -----------------------------------------------------------------------------
    def lease(self, key: str, slot: Slot | None = None) -> Lease:
        """A request's lease on this endpoint, `async with manager.lease(key) as lease:` (in flight,
        activity at its start and end, the breaker's claim and outcome, and the concurrency `slot`
        routing took, given back at its end; see `crazy_gary.core.lease`)."""
        return Lease(self._endpoint(key), self._clock, self._autosleep.kick, self._poller.hurry, slot)

    # -- internals ----------------------------------------------------------------------------
    def _endpoint(self, key: str) -> Endpoint:
        try:
            return self._endpoints[key]
        except KeyError:
            raise EndpointNotFound(key) from None

    def _emit(self, event: ManagerEvent) -> None:
        for observer in self._observers:
            observer(event)

    def _state_changed(self, endpoint: Endpoint, before: EndpointStatus) -> None:
        after = endpoint.status()
        if endpoint.note_change(before, after, self._clock.now()):
            self._autosleep.kick()
        if endpoint.report((after.value, endpoint.hf_state)):
            self._announce_state(endpoint)
            self._autosleep.kick()  # a loading endpoint is due to sleep too

    def _circuit_opened(self, key: str) -> None:
        self._emit(ManagerEvent("circuit_open", key))

    def _announce_state(self, endpoint: Endpoint) -> None:
        status = endpoint.status().value
        self._emit(ManagerEvent("state", endpoint.key, status=status, hf_state=endpoint.hf_state))

    # -- restarts -----------------------------------------------------------------------------
    def restore(self, memories: dict[str, PersistedEndpoint]) -> None:
        """Before start: take back each endpoint's times and unfinished operation."""
        for key, memory in memories.items():
            if key in self._endpoints:
                self._endpoints[key].restore(memory)

    def memories(self) -> dict[str, PersistedEndpoint]:
        """What to keep of every endpoint across a restart."""
        return {key: endpoint.memory() for key, endpoint in self._endpoints.items()}

    def _begin(
        self, endpoint: Endpoint, operation: Operation, actor: str, request_id: str | None = None
    ) -> None:
        previous = endpoint.task
        before = endpoint.status()
        runner = self._runner.wake if operation == "wake" else self._runner.sleep
        task = asyncio.create_task(self._operate(endpoint, operation, actor, runner, previous, request_id))
        endpoint.begin_operation(operation, actor, request_id, self._clock.now(), task)
        self._operations.add(task)
        task.add_done_callback(self._operations.discard)
        self._emit(
            ManagerEvent("operation", endpoint.key, operation=operation, actor=actor, request_id=request_id)
        )
        self._poller.hurry(endpoint)
        self._state_changed(endpoint, before)
        endpoint.notify()

    async def _operate(
        self,
        endpoint: Endpoint,
        operation: Operation,
        actor: str,
        runner: Callable[[Endpoint, list[str]], Awaitable[None]],
        previous: asyncio.Task[None] | None,
        request_id: str | None,
    ) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
        error: str | None = None
        timed_out = False
        sent: list[str] = []  # what a wake sent to start the endpoint
        try:
            await runner(endpoint, sent)
        except ManagementError as exc:
            error = exc.message
        except OperationFailed as exc:
            error, timed_out = str(exc), exc.timed_out
        finally:
            if endpoint.task is asyncio.current_task():
                before = endpoint.status()
                endpoint.end_operation(error, timed_out=timed_out)
                self._state_changed(endpoint, before)
                endpoint.notify()
                self._autosleep.kick()
        done = ManagerEvent.operation_done(
            endpoint.key, operation, actor, error, request_id, sent, timed_out=timed_out
        )
        self._emit(done)
        if error is not None:
            logger.warning("%s of %s failed: %s", operation, endpoint.key, error)

    async def _read_prices(self) -> None:
        await live_prices(self._management, self._endpoints.values(), into=self._prices)
        self._changes.bump()  # the prices the views show

    def _auto_sleep(self, endpoint: Endpoint) -> None:
        self.sleep(endpoint.key, actor="auto-sleep")
