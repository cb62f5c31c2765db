"""Metrics: counters fed by manager and request events, gauges read at scrape time, on the manual clock."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.core.manager import HuggingFaceEndpointManager, ManagerEvent
from crazy_gary.core.status import EndpointStatus, EndpointView
from crazy_gary.engine import Engine, RequestEvent
from crazy_gary.metrics import BackgroundErrors, Metrics, actor_kind

from .core._specs import SPECS
from .core.fakes import FakeManagement
from .core.test_supervisor import FailingList


def view(
    key: str, status: EndpointStatus, *, circuit: str = "closed", pending: int = 0, in_flight: int = 0
) -> EndpointView:
    return EndpointView(
        key=key,
        status=status,
        url=f"demo/{key}",
        last_activity=None,
        wake_time=None,
        sleep_time=None,
        auto_sleep_in=None,
        hf_state=None,
        name=None,
        namespace="demo",
        model=None,
        instance=None,
        price_per_hour=None,
        managed=True,
        in_flight=in_flight,
        pending=pending,
        circuit=circuit,
        operation=None,
        error=None,
    )


class Views:
    """A stand-in for the manager's status, changed by the test."""

    def __init__(self, *views: EndpointView) -> None:
        self.views = {v.key: v for v in views}

    def all_status(self) -> Mapping[str, EndpointView]:
        return self.views


SERVED = RequestEvent(
    model="120b",
    served_by="120b",
    fallback_reason=None,
    status=200,
    stream=False,
    duration=0.2,
    first_byte=0.05,
    retries=0,
    upstream_errors=(),
    api="chat",
)


def request(**changes: Any) -> RequestEvent:
    return dataclasses.replace(SERVED, **changes)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def views() -> Views:
    return Views(view("120b", EndpointStatus.SLEEPING), view("20b", EndpointStatus.RUNNING))


@pytest.fixture
def metrics(views: Views, clock: ManualClock) -> Metrics:
    return Metrics(views, clock)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_endpoint_state_is_one_hot_and_read_at_scrape_time(metrics: Metrics, views: Views) -> None:
    """Each endpoint has one series per state: 1 for its current state, 0 for the five others, never stale."""
    for state in EndpointStatus:
        expected = 1.0 if state is EndpointStatus.SLEEPING else 0.0
        assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state=state.value) == expected
    views.views["120b"] = view("120b", EndpointStatus.STARTING)
    assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state="starting") == 1.0
    assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state="sleeping") == 0.0


def test_breaker_held_and_in_flight_come_from_the_views(metrics: Metrics, views: Views) -> None:
    """Breaker state is one-hot; held and in-flight requests are the views' counts."""
    views.views["20b"] = view("20b", EndpointStatus.RUNNING, circuit="half_open", pending=3, in_flight=2)
    assert sample(metrics, "crazy_gary_breaker_state", endpoint="20b", state="half_open") == 1.0
    assert sample(metrics, "crazy_gary_breaker_state", endpoint="20b", state="open") == 0.0
    assert sample(metrics, "crazy_gary_breaker_state", endpoint="120b", state="closed") == 1.0
    assert sample(metrics, "crazy_gary_held_requests", endpoint="20b") == 3.0
    assert sample(metrics, "crazy_gary_in_flight_requests", endpoint="20b") == 2.0


def test_state_events_count_transitions(metrics: Metrics) -> None:
    """Each "state" event counts one transition to its new state."""
    metrics.on_manager_event(ManagerEvent("state", "120b", status="starting", hf_state="initializing"))
    metrics.on_manager_event(ManagerEvent("state", "120b", status="running", hf_state="running"))
    metrics.on_manager_event(ManagerEvent("state", "120b", status="starting", hf_state="initializing"))
    assert sample(metrics, "crazy_gary_state_transitions_total", endpoint="120b", to="starting") == 2.0
    assert sample(metrics, "crazy_gary_state_transitions_total", endpoint="120b", to="running") == 1.0


def test_operations_count_by_outcome_and_actor_kind(metrics: Metrics) -> None:
    """Operations are counted when they begin (by actor kind) and when they end (by outcome)."""
    metrics.on_manager_event(ManagerEvent("operation", "120b", operation="wake", actor="ops"))
    metrics.on_manager_event(
        ManagerEvent("operation_done", "120b", operation="wake", actor="ops", success=True)
    )
    metrics.on_manager_event(ManagerEvent("operation", "20b", operation="sleep", actor="auto-sleep"))
    metrics.on_manager_event(
        ManagerEvent(
            "operation_done", "20b", operation="sleep", actor="auto-sleep", success=False, error="no"
        )
    )
    ops = "crazy_gary_operations_total"
    assert sample(metrics, ops, operation="wake", endpoint="120b", outcome="success") == 1.0
    assert sample(metrics, ops, operation="sleep", endpoint="20b", outcome="failure") == 1.0
    started = "crazy_gary_operations_started_total"
    assert sample(metrics, started, operation="wake", endpoint="120b", actor_kind="api") == 1.0
    assert sample(metrics, started, operation="sleep", endpoint="20b", actor_kind="auto_sleep") == 1.0
    families = text_string_to_metric_families(metrics.render().decode())
    assert "ops" not in {value for f in families for s in f.samples for value in s.labels.values()}


def test_actor_kind_never_carries_a_key_or_a_name() -> None:
    """Known actors keep a fixed kind; any API key's actor (a name or role:hash) is just `api`."""
    assert actor_kind("gateway") == "gateway"
    assert actor_kind("harmony-client") == "client"
    assert actor_kind("auto-sleep") == "auto_sleep"
    assert actor_kind("operator:1a2b3c4d") == "api"
    assert actor_kind(None) == "unknown"


async def test_wake_duration_is_timed_on_the_clock(metrics: Metrics, clock: ManualClock) -> None:
    """A successful wake is timed from its start to its end on the injected clock; failures are not timed."""
    metrics.on_manager_event(ManagerEvent("operation", "120b", operation="wake", actor="gateway"))
    await clock.advance(42)
    metrics.on_manager_event(ManagerEvent("operation_done", "120b", operation="wake", success=True))
    metrics.on_manager_event(ManagerEvent("operation", "20b", operation="wake", actor="gateway"))
    await clock.advance(300)
    metrics.on_manager_event(ManagerEvent("operation_done", "20b", operation="wake", success=False))
    assert sample(metrics, "crazy_gary_wake_duration_seconds_sum", endpoint="120b") == 42.0
    assert sample(metrics, "crazy_gary_wake_duration_seconds_bucket", endpoint="120b", le="45.0") == 1.0
    assert sample(metrics, "crazy_gary_wake_duration_seconds_bucket", endpoint="120b", le="30.0") == 0.0
    assert sample(metrics, "crazy_gary_wake_duration_seconds_count", endpoint="20b") is None


async def test_a_sleep_forgets_the_wake_it_cancels(metrics: Metrics, clock: ManualClock) -> None:
    """A sleep begun during a wake drops that wake's start, so a later wake is timed from its own start."""
    metrics.on_manager_event(ManagerEvent("operation", "120b", operation="wake", actor="gateway"))
    await clock.advance(10)
    metrics.on_manager_event(ManagerEvent("operation", "120b", operation="sleep", actor="ops"))
    metrics.on_manager_event(ManagerEvent("operation_done", "120b", operation="sleep", success=True))
    await clock.advance(100)
    metrics.on_manager_event(ManagerEvent("operation", "120b", operation="wake", actor="gateway"))
    await clock.advance(20)
    metrics.on_manager_event(ManagerEvent("operation_done", "120b", operation="wake", success=True))
    assert sample(metrics, "crazy_gary_wake_duration_seconds_sum", endpoint="120b") == 20.0
    assert sample(metrics, "crazy_gary_wake_duration_seconds_count", endpoint="120b") == 1.0


def test_requests_are_counted_with_none_for_absent_labels(metrics: Metrics) -> None:
    """A served request and an unserved 503 are counted; absent served_by and fallback_reason read `none`."""
    metrics.on_request_event(request(served_by="20b", fallback_reason="primary_sleeping"))
    metrics.on_request_event(request(served_by=None, status=503, first_byte=None, duration=30.0))
    total = "crazy_gary_requests_total"
    assert (
        sample(
            metrics, total, endpoint="120b", served_by="20b", fallback_reason="primary_sleeping", status="200"
        )
        == 1.0
    )
    assert (
        sample(metrics, total, endpoint="120b", served_by="none", fallback_reason="none", status="503") == 1.0
    )
    assert (
        sample(metrics, "crazy_gary_request_duration_seconds_sum", endpoint="120b", served_by="none") == 30.0
    )
    assert (
        sample(metrics, "crazy_gary_time_to_first_byte_seconds_count", endpoint="120b", served_by="20b")
        == 1.0
    )
    assert (
        sample(metrics, "crazy_gary_time_to_first_byte_seconds_count", endpoint="120b", served_by="none")
        is None
    )


def test_latency_buckets_span_milliseconds_to_minutes(metrics: Metrics) -> None:
    """Durations of a millisecond and of two minutes fall in distinct buckets."""
    metrics.on_request_event(request(duration=0.001, first_byte=0.0005))
    metrics.on_request_event(request(duration=120.0, first_byte=90.0))
    duration = "crazy_gary_request_duration_seconds_bucket"
    assert sample(metrics, duration, endpoint="120b", served_by="120b", le="0.001") == 1.0
    assert sample(metrics, duration, endpoint="120b", served_by="120b", le="60.0") == 1.0
    assert sample(metrics, duration, endpoint="120b", served_by="120b", le="120.0") == 2.0


def test_retries_and_upstream_errors_are_counted(metrics: Metrics) -> None:
    """Retries add up and each upstream error counts once under its kind."""
    metrics.on_request_event(request(retries=2, upstream_errors=("timeout", "status_500")))
    metrics.on_request_event(request(retries=1, upstream_errors=("timeout",)))
    assert sample(metrics, "crazy_gary_retries_total", endpoint="120b") == 3.0
    assert sample(metrics, "crazy_gary_upstream_errors_total", endpoint="120b", kind="timeout") == 2.0
    assert sample(metrics, "crazy_gary_upstream_errors_total", endpoint="120b", kind="status_500") == 1.0


def test_costs_come_from_the_provider_as_counters(views: Views, clock: ManualClock) -> None:
    """With a cost provider, billed seconds and dollars are counter families read at scrape time."""
    totals = {"120b": (3600.0, 5.0), "20b": (0.0, 0.0)}
    metrics = Metrics(views, clock, costs=lambda: totals)
    assert sample(metrics, "crazy_gary_billed_seconds_total", endpoint="120b") == 3600.0
    totals["120b"] = (7200.0, 10.0)
    assert sample(metrics, "crazy_gary_cost_dollars_total", endpoint="120b") == 10.0
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["crazy_gary_billed_seconds"] == "counter"
    assert families["crazy_gary_cost_dollars"] == "counter"


def test_no_cost_provider_means_no_cost_metrics(metrics: Metrics) -> None:
    """Without a cost provider the cost families are absent, not zero."""
    text = metrics.render().decode()
    assert "crazy_gary_billed_seconds" not in text
    assert "crazy_gary_cost_dollars" not in text


def test_each_metrics_has_its_own_registry(views: Views, clock: ManualClock) -> None:
    """Two Metrics in one process neither collide nor share counts."""
    first, second = Metrics(views, clock), Metrics(views, clock)
    first.on_request_event(request())
    assert (
        sample(
            first,
            "crazy_gary_requests_total",
            endpoint="120b",
            served_by="120b",
            fallback_reason="none",
            status="200",
        )
        == 1.0
    )
    assert (
        sample(
            second,
            "crazy_gary_requests_total",
            endpoint="120b",
            served_by="120b",
            fallback_reason="none",
            status="200",
        )
        is None
    )


def test_render_parses_as_prometheus_text(metrics: Metrics) -> None:
    """render() is valid Prometheus text and every name is crazy_gary_-prefixed."""
    metrics.on_request_event(request())
    assert metrics.content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    assert {
        "crazy_gary_endpoint_state",
        "crazy_gary_requests",
        "crazy_gary_request_duration_seconds",
    } <= names
    assert all(name.startswith("crazy_gary_") for name in names)


@pytest.fixture
async def engine(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> AsyncIterator[Engine]:
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    engine = Engine.from_settings(Settings(CRAZY_GARY_SIMULATE=True), hf, clock)
    await engine.start()
    await clock.settle()
    try:
        yield engine
    finally:
        await engine.aclose()


async def test_attached_metrics_follow_a_real_wake(engine: Engine, clock: ManualClock) -> None:
    """Attached to an engine, a wake moves the operation, transition, wake-time and state metrics."""
    metrics = Metrics(engine.manager, clock)
    metrics.attach(engine)
    assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state="sleeping") == 1.0
    engine.manager.wake("120b", actor="ops")
    await clock.settle()
    assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state="starting") == 1.0
    await clock.advance(21)
    assert sample(metrics, "crazy_gary_endpoint_state", endpoint="120b", state="running") == 1.0
    assert (
        sample(metrics, "crazy_gary_operations_total", operation="wake", endpoint="120b", outcome="success")
        == 1.0
    )
    assert sample(metrics, "crazy_gary_state_transitions_total", endpoint="120b", to="running") == 1.0
    wake_time = sample(metrics, "crazy_gary_wake_duration_seconds_sum", endpoint="120b")
    assert wake_time is not None
    assert 20.0 <= wake_time <= 21.0


async def test_a_background_failure_is_counted_by_task(clock: ManualClock) -> None:
    """A poller's unexpected error shows as crazy_gary_background_errors_total{task="poller:demo"} 1."""
    hf = FailingList(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "running"})
    errors = BackgroundErrors()
    metrics = Metrics(Views(), clock, background_errors=errors)
    async with HuggingFaceEndpointManager(SPECS, hf, clock, poll_interval=10, on_background_error=errors):
        await clock.settle()
        hf.failures.append(KeyError("gpt-oss-20b"))
        await clock.advance(11)
    rendered = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    assert rendered[("crazy_gary_background_errors_total", (("task", "poller:demo"),))] == 1.0


def test_requests_are_counted_by_their_api(metrics: Metrics) -> None:
    """Each API's requests, and those sent to an endpoint's address, have their own series."""
    metrics.on_request_event(request())
    metrics.on_request_event(request(api="embeddings"))
    metrics.on_request_event(request(api="embeddings", status=503))
    metrics.on_request_event(request(api="endpoint"))
    for api, status in (("chat", "200"), ("embeddings", "200"), ("embeddings", "503"), ("endpoint", "200")):
        labels = {"api": api, "endpoint": "120b", "status": status}
        assert sample(metrics, "crazy_gary_api_requests_total", **labels) == 1.0
    every = {"endpoint": "120b", "served_by": "120b", "fallback_reason": "none", "status": "200"}
    assert sample(metrics, "crazy_gary_requests_total", **every) == 3.0
