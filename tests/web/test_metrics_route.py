"""GET /metrics over a real loopback socket: guarded by a viewer key, Prometheus text, moved by operations."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.simulator import SimulatorConfig, SimulatorServer
from crazy_gary.web import create_app

from ..conftest import serve_app
from ..core.fakes import FakeManagement
from ..core.test_supervisor import FailingList

OPERATOR, USER, VIEWER = "op-key-123456", "user-key-123456", "view-key-123456"
KEYS = f"ops:operator:{OPERATOR},user:{USER},viewer:{VIEWER}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    http: httpx2.AsyncClient
    clock: ManualClock

    async def scrape(self) -> Samples:
        response = await self.http.get("/metrics", headers={"Authorization": f"Bearer {VIEWER}"})
        assert response.status_code == 200
        return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return Settings(CRAZY_GARY_SIMULATE=True, CRAZY_GARY_API_KEYS=KEYS)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    app = create_app(settings, clock=clock, management=hf)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
        await clock.settle()
        yield Served(http, clock)


@pytest.mark.parametrize("key", [None, "wrong-key-123456"])
async def test_metrics_need_a_key(served: Served, key: str | None) -> None:
    """Without a key, or with a wrong one, /metrics answers 401 in the JSON error shape."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await served.http.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["success"] is False
    assert response.json()["code"] in ("missing_key", "invalid_key")


@pytest.mark.parametrize("key", [VIEWER, USER, OPERATOR])
async def test_every_role_reads_prometheus_text(served: Served, key: str) -> None:
    """A viewer key (or higher) gets Prometheus text holding the live endpoint states, and no secret."""
    response = await served.http.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    assert value(samples, "crazy_gary_endpoint_state", endpoint="120b", state="sleeping") == 1.0
    assert value(samples, "crazy_gary_endpoint_state", endpoint="20b", state="running") == 1.0
    assert value(samples, "crazy_gary_breaker_state", endpoint="20b", state="closed") == 1.0
    for secret in (OPERATOR, USER, VIEWER, "hf_"):
        assert secret not in response.text


async def test_a_wake_moves_the_metrics(served: Served) -> None:
    """Waking 120b through the API counts the operation, its transitions and its time, and flips its state."""
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    assert (await served.http.post("/api/endpoints/wake/120b", headers=headers)).status_code == 202
    starting = await served.scrape()
    assert value(starting, "crazy_gary_endpoint_state", endpoint="120b", state="starting") == 1.0
    started = "crazy_gary_operations_started_total"
    assert value(starting, started, operation="wake", endpoint="120b", actor_kind="api") == 1.0
    await served.clock.advance(21)
    running = await served.scrape()
    assert value(running, "crazy_gary_endpoint_state", endpoint="120b", state="running") == 1.0
    assert value(running, "crazy_gary_endpoint_state", endpoint="120b", state="starting") == 0.0
    ops = "crazy_gary_operations_total"
    assert value(running, ops, operation="wake", endpoint="120b", outcome="success") == 1.0
    assert value(running, "crazy_gary_state_transitions_total", endpoint="120b", to="running") == 1.0
    assert value(running, "crazy_gary_wake_duration_seconds_count", endpoint="120b") == 1.0


async def test_metrics_is_in_the_openapi_schema(served: Served) -> None:
    """The route is documented with the other routes."""
    schema = (await served.http.get("/openapi.json")).json()
    assert "get" in schema["paths"]["/metrics"]


async def test_a_chat_through_the_gateway_is_counted(settings: Settings) -> None:
    """A chat served by the simulator shows up in the request counters and latency histograms."""
    clock = ManualClock()
    config = SimulatorConfig(tokens_per_second=math.inf, initial_state="running")
    async with SimulatorServer(config, clock=clock) as sim:
        app = create_app(settings, clock=clock, management_url=sim.management_url)
        async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as http:
            served = Served(http, clock)
            await wait_ready(http)
            body = {"model": "20b", "messages": [{"role": "user", "content": "hi"}]}
            chat = await http.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {USER}"}
            )
            assert chat.status_code == 200
            samples = await scrape_until(served, "crazy_gary_requests_total")
    labels = {"endpoint": "20b", "served_by": "20b"}
    assert value(samples, "crazy_gary_requests_total", **labels, fallback_reason="none", status="200") == 1.0
    assert value(samples, "crazy_gary_request_duration_seconds_count", **labels) == 1.0
    assert value(samples, "crazy_gary_time_to_first_byte_seconds_count", **labels) == 1.0


async def wait_ready(http: httpx2.AsyncClient) -> None:
    """The first status poll goes through huggingface_hub in a thread: wait for it in real time."""
    for _ in range(200):
        if (await http.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the app never became ready")


async def scrape_until(served: Served, name: str) -> Samples:
    """The request event fires once the answer's last byte went: scrape until it has been counted."""
    for _ in range(100):
        samples = await served.scrape()
        if any(sample_name == name for sample_name, _ in samples):
            return samples
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never appeared")


async def test_a_background_failure_shows_in_metrics(settings: Settings) -> None:
    """A poller's unexpected error is counted by the app: /metrics shows it under task="poller:demo"."""
    clock = ManualClock()
    hf = FailingList(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    app = create_app(settings, clock=clock, management=hf)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
        served = Served(http, clock)
        await clock.settle()
        assert value(await served.scrape(), "crazy_gary_background_errors_total", task="poller:demo") is None
        hf.failures.append(KeyError("gpt-oss-20b"))
        await clock.advance(settings.poll_interval)
        samples = await served.scrape()
        assert value(samples, "crazy_gary_background_errors_total", task="poller:demo") == 1.0
