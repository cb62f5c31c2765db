"""The control API under /_sim: states, faults, call counts and reset."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, create_simulator_app

from ._helpers import NAMESPACE, PENDING, TOKEN, HubCall, calls, chat_body, set_endpoint, until

CHAT = "/endpoints/gpt-oss-120b/v1/chat/completions"


async def test_calls_count_what_each_endpoint_received(client: httpx2.AsyncClient, hub: HubCall) -> None:
    """Counts separate gets from lists, count chats but not /health, and count cold starts begun."""
    await hub("list_inference_endpoints")
    await hub("get_inference_endpoint", "gpt-oss-120b")
    await hub("get_inference_endpoint", "gpt-oss-120b")
    await hub("resume_inference_endpoint", "gpt-oss-120b")
    await hub("pause_inference_endpoint", "gpt-oss-20b")
    await hub("scale_to_zero_inference_endpoint", "gpt-oss-20b")
    await hub("update_inference_endpoint", "gpt-oss-20b", scale_to_zero_timeout=20)
    await client.post(CHAT, json=chat_body())
    await client.get("/endpoints/gpt-oss-120b/health")
    assert await calls(client) == {
        "gpt-oss-120b": {
            "get": 2,
            "resume": 1,
            "pause": 0,
            "scale-to-zero": 0,
            "update": 0,
            "delete": 0,
            "inference": 1,
            "health": 1,
            "starts": 1,
        },
        "gpt-oss-20b": {
            "get": 0,
            "resume": 0,
            "pause": 1,
            "scale-to-zero": 1,
            "update": 1,
            "delete": 0,
            "inference": 0,
            "health": 0,
            "starts": 0,
        },
        "bge-small-en": dict.fromkeys(
            ("get", "resume", "pause", "scale-to-zero", "update", "delete", "inference", "health", "starts"),
            0,
        ),
        "_list": 1,
    }


async def test_state_set_takes_effect_at_once(client: httpx2.AsyncClient, hub: HubCall) -> None:
    """A state set through the control API applies at once, without a cold start or a counted start."""
    settings = await set_endpoint(client, "gpt-oss-120b", state="running")
    assert settings["state"] == "running"
    endpoint = await hub("get_inference_endpoint", "gpt-oss-120b")
    assert (endpoint.status, endpoint.url is not None) == ("running", True)
    await set_endpoint(client, "gpt-oss-120b", state="paused")
    assert (await hub("get_inference_endpoint", "gpt-oss-120b")).url is None
    assert (await calls(client))["gpt-oss-120b"]["starts"] == 0


async def test_cold_start_is_per_endpoint(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """A cold start set for one endpoint governs its next start (after its second of pending)."""
    await set_endpoint(client, "gpt-oss-20b", cold_start=2)
    await hub("resume_inference_endpoint", "gpt-oss-20b")
    await clock.advance(PENDING + 2)
    assert (await hub("get_inference_endpoint", "gpt-oss-20b")).status == "running"


async def test_endpoint_settings_are_answered(client: httpx2.AsyncClient) -> None:
    """PUT and GET of an endpoint's settings answer all of them."""
    settings = await set_endpoint(client, "gpt-oss-20b", latency_ms=10, error_rate=0.5)
    assert settings == {
        "name": "gpt-oss-20b",
        "state": "scaledToZero",
        "cold_start": 20.0,
        "latency_ms": 10.0,
        "error_rate": 0.5,
        "error_status": 500,
        "disconnect_rate": 0.0,
        "ready_delay": 0.0,
        "pending": 1.0,
        "start_on": "any",
    }
    assert (await client.get("/_sim/endpoints/gpt-oss-20b")).json() == settings


@pytest.mark.parametrize(
    "body",
    [
        {"state": "asleep"},
        {"error_rate": 1.5},
        {"error_rate": "high"},
        {"disconnect_rate": -0.1},
        {"error_status": 200},
        {"error_status": True},
        {"cold_start": -1},
        {"latency_ms": None},
        {"ready_delay": -1},
        {"pending": "soon"},
        {"start_on": "health"},
        {"start_on": None},
        {"surprise": 1},
        ["state", "running"],
    ],
)
async def test_bad_control_bodies_are_400_and_change_nothing(client: httpx2.AsyncClient, body: Any) -> None:
    """Invalid control values get a 400 JSON error and leave the settings as they were."""
    before = (await client.get("/_sim/endpoints/gpt-oss-20b")).json()
    response = await client.put(
        "/_sim/endpoints/gpt-oss-20b", json={"latency_ms": 5, **body} if isinstance(body, dict) else body
    )
    assert response.status_code == 400
    assert "error" in response.json()
    assert (await client.get("/_sim/endpoints/gpt-oss-20b")).json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 2},
        {"error_status": 99},
        {"latency_ms": -5},
        {"malformed_rate": 1.5},
        {"retry_after": -1},
        {"retry_after": "later"},
        {"other": 1},
    ],
)
async def test_bad_management_fault_bodies_are_400(client: httpx2.AsyncClient, body: dict[str, Any]) -> None:
    """Invalid management fault settings get a 400 JSON error with a sentence, and change nothing."""
    before = (await client.get("/_sim/management")).json()
    response = await client.put("/_sim/management", json={"error_rate": 0.5, **body})
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert (await client.get("/_sim/management")).json() == before


async def test_control_of_an_unknown_endpoint_is_404(client: httpx2.AsyncClient) -> None:
    """The control API answers 404 for an endpoint that does not exist."""
    response = await client.put("/_sim/endpoints/nope", json={"state": "running"})
    assert response.status_code == 404


async def test_control_needs_no_token(client: httpx2.AsyncClient) -> None:
    """/_sim answers without any Authorization header."""
    response = await client.get("/_sim/calls", headers={"Authorization": ""})
    assert response.status_code == 200


async def test_reset_puts_everything_back(client: httpx2.AsyncClient, hub: HubCall) -> None:
    """Reset restores endpoints, settings and counts, and removes created endpoints."""
    await hub(
        "create_inference_endpoint",
        "extra",
        repository="openai/gpt-oss-20b",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-l4",
        region="us-east-1",
        vendor="aws",
    )
    await hub("delete_inference_endpoint", "gpt-oss-20b")
    await set_endpoint(client, "gpt-oss-120b", state="failed", error_rate=1)
    await client.put("/_sim/management", json={"latency_ms": 1})
    assert (await client.post("/_sim/reset")).status_code == 200
    endpoints = await hub("list_inference_endpoints")
    assert sorted((e.name, e.status) for e in endpoints) == [
        ("bge-small-en", "scaledToZero"),
        ("gpt-oss-120b", "scaledToZero"),
        ("gpt-oss-20b", "scaledToZero"),
    ]
    assert (await client.get("/_sim/endpoints/gpt-oss-120b")).json()["error_rate"] == 0.0
    assert (await client.get("/_sim/management")).json()["latency_ms"] == 0.0
    counted = await calls(client)
    assert set(counted) == {"bge-small-en", "gpt-oss-120b", "gpt-oss-20b", "_list"}
    assert counted["_list"] == 1
    assert counted["gpt-oss-120b"]["get"] == 0


async def test_reset_releases_held_requests(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """A request held through a cold start gets 503 when the simulator is reset, and starts nothing new."""
    held = asyncio.ensure_future(client.post(CHAT, json=chat_body(), headers={"X-Scale-Up-Timeout": "60"}))
    await until(lambda: clock.sleepers > 0)
    await client.post("/_sim/reset")
    assert (await held).status_code == 503
    assert (await calls(client))["gpt-oss-120b"]["starts"] == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("DELETE", "/_sim/calls", 405),
        ("GET", "/v2/endpoint/demo/gpt-oss-20b/pause", 405),
    ],
)
async def test_routing_errors_are_json(
    client: httpx2.AsyncClient, method: str, path: str, status: int
) -> None:
    """Unknown routes and wrong methods answer JSON errors too."""
    response = await client.request(method, path)
    assert response.status_code == status
    assert "error" in response.json()


async def _fault_pattern(seed: int) -> list[int]:
    app = create_simulator_app(SimulatorConfig(seed=seed, initial_state="running"), ManualClock())
    transport = httpx2.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://sim", headers=headers) as client:
        await client.put("/_sim/management", json={"error_rate": 0.5})
        return [(await client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b")).status_code for _ in range(24)]


async def test_random_faults_are_reproducible_from_the_seed() -> None:
    """The same seed gives the same sequence of injected faults; the app needs no server to run."""
    first, again = await _fault_pattern(7), await _fault_pattern(7)
    assert first == again
    assert set(first) == {200, 503}
