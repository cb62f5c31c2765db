"""Prometheus metrics: counters fed by manager and engine events, gauges read from the manager when scraped.

Each :class:`Metrics` owns its `CollectorRegistry` (never the process-wide default), so several apps can
live in one process. Labels hold endpoint keys, states and outcomes: never a key, a token or an actor's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crazy_gary.clock import Clock
from crazy_gary.core.breaker import BreakerState
from crazy_gary.core.manager import ManagerEvent
from crazy_gary.core.status import EndpointStatus, EndpointView
from crazy_gary.core.supervisor import BackgroundFailure
from crazy_gary.engine import Engine, RequestEvent
from crazy_gary.usage.ledger import IN_PROCESS

__all__ = ["BackgroundErrors", "CostProvider", "Metrics", "StatusSource", "actor_kind"]

CostProvider = Callable[[], Mapping[str, tuple[float, float]]]
"""Endpoint key → (billed seconds, US dollars) so far; both only grow."""

# A gateway answers in milliseconds from a warm cache, or after minutes held through a cold start.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Cold starts of Inference Endpoints take from seconds to ENDPOINT_WAKE_TIMEOUT (300 s by default) and more.
WAKE_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900)

_NONE = "none"
_MAX_CACHED_SERIES = 10_000  # labelled series kept at hand for the requests' counters
_STATES = tuple(status.value for status in EndpointStatus)
_CIRCUITS = tuple(state.value for state in BreakerState)
_ACTOR_KINDS = {"auto-sleep": "auto_sleep", "gateway": "gateway", "harmony-client": "client"}


class StatusSource(Protocol):
    """What the scrape-time gauges read: the manager, or a stand-in in tests."""

    def all_status(self) -> Mapping[str, EndpointView]: ...


def actor_kind(actor: str | None) -> str:
    """A bounded label for who started an operation; an API key's actor (name or role and hash) is `api`."""
    if actor is None:
        return "unknown"
    return _ACTOR_KINDS.get(actor, "api")


def _one_hot(
    name: str, documentation: str, label: str, values: tuple[str, ...], current: Mapping[str, str]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["endpoint", label])
    for key, now in current.items():
        for value in values:
            family.add_metric([key, value], 1.0 if value == now else 0.0)
    return family


def _per_endpoint(name: str, documentation: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["endpoint"])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _cost_families(costs: Mapping[str, tuple[float, float]]) -> Iterator[Metric]:
    billed = CounterMetricFamily(
        "crazy_gary_billed_seconds",
        "Seconds Hugging Face bills (initializing or running) since crazy-gary first saw the endpoint.",
        labels=["endpoint"],
    )
    dollars = CounterMetricFamily(
        "crazy_gary_cost_dollars", "What those billed seconds cost, in US dollars.", labels=["endpoint"]
    )
    for key, (seconds, cost) in costs.items():
        billed.add_metric([key], seconds)
        dollars.add_metric([key], cost)
    yield billed
    yield dollars


class _LiveCollector(Collector):
    """Values read at scrape time, so they are never stale: states, breakers, queues, costs."""

    def __init__(
        self,
        source: StatusSource,
        costs: CostProvider | None,
        degraded: Callable[[], bool] | None,
        leader: Callable[[], bool] | None,
    ) -> None:
        self._source = source
        self._costs = costs
        self._degraded = degraded
        self._leader = leader

    def collect(self) -> Iterable[Metric]:
        views = self._source.all_status()
        yield _one_hot(
            "crazy_gary_endpoint_state",
            "1 for the endpoint's current crazy-gary state, 0 for the others.",
            "state",
            _STATES,
            {key: view.status.value for key, view in views.items()},
        )
        yield _one_hot(
            "crazy_gary_breaker_state",
            "1 for the endpoint's current circuit breaker state, 0 for the others.",
            "state",
            _CIRCUITS,
            {key: view.circuit for key, view in views.items()},
        )
        yield _per_endpoint(
            "crazy_gary_held_requests",
            "Requests held waiting for the endpoint to wake.",
            {key: view.pending for key, view in views.items()},
        )
        yield _per_endpoint(
            "crazy_gary_queued_requests",
            "Requests waiting for a free slot under the endpoint's max_concurrency.",
            {key: view.queued for key, view in views.items()},
        )
        yield _per_endpoint(
            "crazy_gary_in_flight_requests",
            "Requests being served by the endpoint.",
            {key: view.in_flight for key, view in views.items()},
        )
        if self._costs is not None:
            yield from _cost_families(self._costs())
        degraded = GaugeMetricFamily(
            "crazy_gary_degraded",
            "1 while the configured Redis cannot be reached and this replica serves from its own state.",
        )
        degraded.add_metric([], 1.0 if self._degraded is not None and self._degraded() else 0.0)
        yield degraded
        leader = GaugeMetricFamily(
            "crazy_gary_leader", "1 while this replica runs auto-sleep (the leader among replicas)."
        )
        leader.add_metric([], 1.0 if self._leader is None or self._leader() else 0.0)
        yield leader


class BackgroundErrors:
    """`crazy_gary_background_errors_total{task}`, counted as the supervisor's error hook
    (`crazy_gary.core.supervisor.ErrorHook`). Built before the manager whose loops it counts; shown
    by the :class:`Metrics` it is given to."""

    def __init__(self) -> None:
        self.counter = Counter(
            "crazy_gary_background_errors",
            "Unexpected exceptions of background tasks (a loop runs again after a backoff).",
            ["task"],
            registry=None,
        )

    def __call__(self, failure: BackgroundFailure) -> None:
        self.counter.labels(task=failure.task).inc()


class Metrics:
    """The process's Prometheus metrics, in a registry of their own; `attach` it to an engine to fill it."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        manager: StatusSource,
        clock: Clock,
        *,
        costs: CostProvider | None = None,
        degraded: Callable[[], bool] | None = None,
        leader: Callable[[], bool] | None = None,
        background_errors: BackgroundErrors | None = None,
    ) -> None:
        self._clock = clock
        self._wakes_started: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self.registry.register(_LiveCollector(manager, costs, degraded, leader))
        self.background_errors = background_errors or BackgroundErrors()
        self.registry.register(self.background_errors.counter)
        self._counters()
        self._histograms()

    def _counters(self) -> None:
        def counter(name: str, documentation: str, labels: list[str]) -> Counter:
            return Counter(name, documentation, labels, registry=self.registry)

        self._state_transitions = counter(
            "crazy_gary_state_transitions", "Changes of an endpoint's crazy-gary state.", ["endpoint", "to"]
        )
        self._operations = counter(
            "crazy_gary_operations", "Wakes and sleeps that ended.", ["operation", "endpoint", "outcome"]
        )
        self._wake_requests = counter(
            "crazy_gary_wake_requests",
            "What wakes sent to start an endpoint: a health request, an inference request, a resume.",
            ["endpoint", "kind"],
        )
        self._operations_started = counter(
            "crazy_gary_operations_started",
            "Wakes and sleeps that began, by who began them.",
            ["operation", "endpoint", "actor_kind"],
        )
        self._request_children: dict[tuple[str, str, str | None, str, str], tuple[Any, Any, Any]] = {}
        self._first_byte_children: dict[tuple[str, str], Any] = {}
        self._requests = counter(
            "crazy_gary_requests",
            "Inference requests that ended, by the endpoint asked for and the one that served.",
            ["endpoint", "served_by", "fallback_reason", "status"],
        )
        self._api_requests = counter(
            "crazy_gary_api_requests",
            "Requests that ended, by the API they used (chat, completions, responses, embeddings, or"
            " endpoint for one sent to an endpoint's address).",
            ["api", "endpoint", "status"],
        )
        self._tokens = counter(
            "crazy_gary_tokens",
            "Tokens the answers said they used, by key, serving endpoint and kind (prompt, completion).",
            ["key", "endpoint", "kind"],
        )
        self._upstream_errors = counter(
            "crazy_gary_upstream_errors",
            "Failed attempts upstream on the way to an answer, by kind.",
            ["endpoint", "kind"],
        )
        self._retries = counter("crazy_gary_retries", "Upstream attempts tried again.", ["endpoint"])

    def _histograms(self) -> None:
        self._request_duration = Histogram(
            "crazy_gary_request_duration_seconds",
            "Seconds from an inference request's arrival to its last byte.",
            ["endpoint", "served_by"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._time_to_first_byte = Histogram(
            "crazy_gary_time_to_first_byte_seconds",
            "Seconds from an inference request's arrival to the first byte of its answer.",
            ["endpoint", "served_by"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._wake_duration = Histogram(
            "crazy_gary_wake_duration_seconds",
            "Seconds from the start of a wake to the endpoint running, for wakes that succeeded.",
            ["endpoint"],
            buckets=WAKE_BUCKETS,
            registry=self.registry,
        )

    def attach(self, engine: Engine) -> None:
        """Listen to the engine's manager events and its request events."""
        engine.manager.subscribe(self.on_manager_event)
        engine.subscribe(self.on_request_event)

    def on_manager_event(self, event: ManagerEvent) -> None:
        """Count a state change, or an operation's start or end."""
        if event.kind == "state" and event.status is not None:
            self._state_transitions.labels(endpoint=event.key, to=event.status).inc()
        elif event.kind == "operation" and event.operation is not None:
            self._operation_began(event.key, event.operation, event.actor)
        elif event.kind == "operation_done" and event.operation is not None:
            self._operation_ended(event.key, event.operation, bool(event.success))
        elif event.kind == "wake_request" and event.operation is not None:
            self._wake_requests.labels(endpoint=event.key, kind=event.operation).inc()

    def _operation_began(self, key: str, operation: str, actor: str | None) -> None:
        self._operations_started.labels(operation=operation, endpoint=key, actor_kind=actor_kind(actor)).inc()
        if operation == "wake":
            self._wakes_started[key] = self._clock.monotonic()
        else:  # a sleep cancels a wake in progress, which then never reports its end
            self._wakes_started.pop(key, None)

    def _operation_ended(self, key: str, operation: str, success: bool) -> None:
        outcome = "success" if success else "failure"
        self._operations.labels(operation=operation, endpoint=key, outcome=outcome).inc()
        if operation != "wake":
            return
        started = self._wakes_started.pop(key, None)
        if success and started is not None:
            self._wake_duration.labels(endpoint=key).observe(self._clock.monotonic() - started)

    def on_request_event(self, event: RequestEvent) -> None:
        """Count a finished request, its time, its retries and its upstream errors."""
        served_by = event.served_by or _NONE
        status = str(event.status)
        children = self._request_children.get(
            (event.model, served_by, event.fallback_reason, status, event.api)
        )
        if children is None:
            children = self._children_of(event, served_by, status)
        requests, api_requests, duration = children
        requests.inc()
        api_requests.inc()
        duration.observe(event.duration)
        if event.first_byte is not None:
            first_byte = self._first_byte_children.get((event.model, served_by))
            if first_byte is None:
                first_byte = self._time_to_first_byte.labels(endpoint=event.model, served_by=served_by)
                if len(self._first_byte_children) < _MAX_CACHED_SERIES:
                    self._first_byte_children[(event.model, served_by)] = first_byte
            first_byte.observe(event.first_byte)
        if event.retries:
            self._retries.labels(endpoint=event.model).inc(event.retries)
        if event.tokens is not None:
            key = event.caller or IN_PROCESS
            self._tokens.labels(key=key, endpoint=served_by, kind="prompt").inc(event.tokens.prompt)
            self._tokens.labels(key=key, endpoint=served_by, kind="completion").inc(event.tokens.completion)
        for kind in event.upstream_errors:
            self._upstream_errors.labels(endpoint=event.model, kind=kind).inc()

    def _children_of(self, event: RequestEvent, served_by: str, status: str) -> tuple[Any, Any, Any]:
        """The labelled series a request of this kind counts in, looked up once (a `labels()` call
        costs about 1.7 µs, four of them on every request)."""
        children = (
            self._requests.labels(
                endpoint=event.model,
                served_by=served_by,
                fallback_reason=event.fallback_reason or _NONE,
                status=status,
            ),
            self._api_requests.labels(api=event.api, endpoint=event.model, status=status),
            self._request_duration.labels(endpoint=event.model, served_by=served_by),
        )
        if len(self._request_children) < _MAX_CACHED_SERIES:
            key = (event.model, served_by, event.fallback_reason, status, event.api)
            self._request_children[key] = children
        return children

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (see `content_type`)."""
        return generate_latest(self.registry)
