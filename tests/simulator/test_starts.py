"""How an endpoint starts: `pending` first, then its cold start, then `ready_delay`; what `start_on` allows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from crazy_gary.clock import ManualClock

from ._helpers import COLD_START, NAMESPACE, PENDING, HubCall, calls, chat_body, set_endpoint, until

NAME = "gpt-oss-20b"
ONE = f"/v2/endpoint/{NAMESPACE}/{NAME}"
CHAT = f"/endpoints/{NAME}/v1/chat/completions"
HEALTH = f"/endpoints/{NAME}/health"


async def _status(client: httpx2.AsyncClient) -> dict[str, Any]:
    status: dict[str, Any] = (await client.get(ONE)).json()["status"]
    return status


async def test_every_start_waits_in_pending_first(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """A start is pending ("Endpoint waiting to be scheduled") for a second, initializing, then ready."""
    assert (await client.post(CHAT, json=chat_body())).status_code == 503
    status = await _status(client)
    assert (status["state"], status["message"]) == ("pending", "Endpoint waiting to be scheduled")
    await clock.advance(PENDING - 0.1)
    assert (await _status(client))["state"] == "pending"
    await clock.advance(0.1)
    assert (await _status(client))["state"] == "initializing"
    await clock.advance(COLD_START)
    status = await _status(client)
    assert (status["state"], status["message"]) == ("running", "Endpoint is ready")


async def test_pending_is_per_endpoint(client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock) -> None:
    """The pending setting governs how long each start waits before its cold start."""
    await set_endpoint(client, NAME, pending=30)
    assert (await hub("resume_inference_endpoint", NAME)).status == "pending"
    await clock.advance(30)
    assert (await _status(client))["state"] == "initializing"
    await clock.advance(COLD_START)
    assert (await _status(client))["state"] == "running"


async def test_no_pending_goes_straight_to_initializing(client: httpx2.AsyncClient, hub: HubCall) -> None:
    """With pending 0 a start initializes at once."""
    await set_endpoint(client, NAME, pending=0)
    assert (await hub("resume_inference_endpoint", NAME)).status == "initializing"


async def test_a_pending_state_set_waits_the_pending_setting(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """A state of pending set through the control API lasts the pending setting, then initializes."""
    await set_endpoint(client, NAME, pending=5, state="pending")
    await clock.advance(4.9)
    assert (await _status(client))["state"] == "pending"
    await clock.advance(0.1)
    assert (await _status(client))["state"] == "initializing"


async def test_ready_delay_keeps_the_routes_503_after_running(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """While the model loads, HF says running but every route, the health route too, answers 503."""
    await set_endpoint(client, NAME, ready_delay=10, state="running")
    assert (await _status(client))["state"] == "running"
    health = await client.get(HEALTH)
    assert health.status_code == 503
    assert health.json()["error"]["code"] == 503
    assert (await client.post(CHAT, json=chat_body())).status_code == 503
    await clock.advance(10)
    assert (await client.get(HEALTH)).status_code == 200
    assert (await client.post(CHAT, json=chat_body())).status_code == 200


async def test_ready_delay_follows_every_start(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """After a start, the routes answer once pending, cold start and ready_delay have passed."""
    await set_endpoint(client, NAME, ready_delay=30)
    await hub("resume_inference_endpoint", NAME)
    await clock.advance(PENDING + COLD_START)
    assert (await _status(client))["state"] == "running"
    assert (await client.get(HEALTH)).status_code == 503
    await clock.advance(30)
    assert (await client.get(HEALTH)).status_code == 200


async def test_a_held_request_waits_for_the_model_to_load(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """X-Scale-Up-Timeout holds a request through pending, cold start and ready_delay alike."""
    await set_endpoint(client, NAME, ready_delay=30)
    headers = {"X-Scale-Up-Timeout": "600"}
    held = asyncio.ensure_future(client.post(CHAT, json=chat_body(), headers=headers))
    await until(lambda: clock.sleepers > 0)
    await clock.advance(PENDING + COLD_START + 29)
    assert not held.done()
    await clock.advance(1)
    assert (await held).status_code == 200


async def test_start_on_inference_ignores_the_health_route(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """With start_on inference a health request leaves a scaled-to-zero endpoint asleep, even if it
    would wait; a chat request starts it."""
    await set_endpoint(client, NAME, start_on="inference")
    assert (await client.get(HEALTH)).status_code == 503
    held = await client.get(HEALTH, headers={"X-Scale-Up-Timeout": "60"})
    assert held.status_code == 503
    assert (await _status(client))["state"] == "scaledToZero"
    counted = (await calls(client))[NAME]
    assert (counted["health"], counted["starts"]) == (2, 0)
    assert (await client.post(CHAT, json=chat_body())).status_code == 503
    assert (await _status(client))["state"] == "pending"
    assert (await calls(client))[NAME]["starts"] == 1


async def test_start_on_inference_counts_the_models_route(client: httpx2.AsyncClient) -> None:
    """/v1/models is an inference route: it starts an endpoint whose start_on is inference."""
    await set_endpoint(client, NAME, start_on="inference")
    assert (await client.get(f"/endpoints/{NAME}/v1/models")).status_code == 503
    assert (await _status(client))["state"] == "pending"


async def test_start_on_any_lets_the_health_route_start_it(client: httpx2.AsyncClient) -> None:
    """By default any request, the health route's included, starts a scaled-to-zero endpoint."""
    assert (await client.get(HEALTH)).status_code == 503
    assert (await _status(client))["state"] == "pending"
    assert (await calls(client))[NAME]["starts"] == 1


async def test_start_settings_are_shown(client: httpx2.AsyncClient) -> None:
    """GET /_sim/endpoints/{name} shows ready_delay, pending and start_on as they were set."""
    await set_endpoint(client, NAME, ready_delay=2.5, pending=4, start_on="inference")
    settings = (await client.get(f"/_sim/endpoints/{NAME}")).json()
    assert (settings["ready_delay"], settings["pending"], settings["start_on"]) == (2.5, 4.0, "inference")
