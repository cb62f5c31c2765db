"""Hugging Face's own idle timer: `minReplica` 0 and `scaleToZeroTimeout` N scale an endpoint to zero."""

from __future__ import annotations

import math
from typing import Any

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.config import load_simulator_config
from crazy_gary.errors import ConfigError
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import COLD_START, NAMESPACE, PENDING, TOKEN, HubCall, chat_body, set_endpoint

NAME = "gpt-oss-20b"
ONE = f"/v2/endpoint/{NAMESPACE}/{NAME}"
CHAT = f"/endpoints/{NAME}/v1/chat/completions"
HEALTH = f"/endpoints/{NAME}/health"
MINUTE = 60.0
TIMEOUT = 15 * MINUTE  # the seeds' scaleToZeroTimeout, in seconds of the default minute


async def _status(client: httpx2.AsyncClient) -> dict[str, Any]:
    response = await client.get(ONE)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["status"]
    return status


async def _update(client: httpx2.AsyncClient, scaling: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(ONE, json={"compute": {"scaling": scaling}})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _updated_at(hub: HubCall) -> float:
    endpoint = await hub("get_inference_endpoint", NAME)
    return float(endpoint.updated_at.timestamp())


async def test_idle_endpoint_scales_itself_to_zero_after_the_timeout(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """A running endpoint left without requests is scaledToZero N minutes later, updatedAt at that moment."""
    await set_endpoint(client, NAME, state="running")
    began = clock.now()
    await clock.advance(TIMEOUT - 1)
    assert (await _status(client))["state"] == "running"
    await clock.advance(1)
    status = await _status(client)
    assert status["state"] == "scaledToZero"
    assert status["url"].endswith(f"/endpoints/{NAME}")
    assert await _updated_at(hub) == began + TIMEOUT


async def test_a_late_read_shows_the_moment_it_scaled(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """Nobody reads while it idles: a read hours later says it scaled to zero exactly at the timeout."""
    await set_endpoint(client, NAME, state="running")
    began = clock.now()
    await clock.advance(5 * 3600)
    assert (await _status(client))["state"] == "scaledToZero"
    assert await _updated_at(hub) == began + TIMEOUT


async def test_inference_restarts_the_timer(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """A request to an inference route counts from its own moment: the timer runs N minutes from it."""
    await set_endpoint(client, NAME, state="running")
    await clock.advance(10 * MINUTE)
    assert (await client.post(CHAT, json=chat_body())).status_code == 200
    await clock.advance(TIMEOUT - 1)
    assert (await _status(client))["state"] == "running"
    await clock.advance(1)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_models_route_counts_as_traffic(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """/v1/models is an inference route too: it restarts the timer."""
    await set_endpoint(client, NAME, state="running")
    await clock.advance(10 * MINUTE)
    assert (await client.get(f"/endpoints/{NAME}/v1/models")).status_code == 200
    await clock.advance(TIMEOUT - 1)
    assert (await _status(client))["state"] == "running"


async def test_health_requests_do_not_count(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """Health checks every minute keep nothing awake: the endpoint scales to zero on time."""
    await set_endpoint(client, NAME, state="running")
    for _ in range(14):
        await clock.advance(MINUTE)
        assert (await client.get(HEALTH)).status_code == 200
    await clock.advance(MINUTE)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_the_timer_counts_from_running_not_from_the_request_that_woke_it(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """After a start, the timer runs from the moment the endpoint runs, later than the waking request."""
    assert (await client.post(CHAT, json=chat_body())).status_code == 503  # starts it
    await clock.advance(PENDING + COLD_START)
    assert (await _status(client))["state"] == "running"
    await clock.advance(TIMEOUT - 1)
    assert (await _status(client))["state"] == "running"
    await clock.advance(1)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_null_timeout_never_scales(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """An explicit null scaleToZeroTimeout stays null, and HF then never scales the endpoint by itself."""
    answer = await _update(client, {"scaleToZeroTimeout": None})
    assert answer["compute"]["scaling"]["scaleToZeroTimeout"] is None
    await set_endpoint(client, NAME, state="running")
    await clock.advance(48 * 3600)
    assert (await _status(client))["state"] == "running"


async def test_min_replica_one_never_scales(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """With minReplica 1 the timeout does nothing."""
    await _update(client, {"minReplica": 1})
    await set_endpoint(client, NAME, state="running")
    await clock.advance(48 * 3600)
    assert (await _status(client))["state"] == "running"


async def test_a_longer_timeout_applies_at_once(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """A longer timeout set while running moves the moment of scaling to N' minutes after the last use."""
    await set_endpoint(client, NAME, state="running")
    await clock.advance(10 * MINUTE)
    await _update(client, {"scaleToZeroTimeout": 30})
    await clock.advance(20 * MINUTE - 1)
    assert (await _status(client))["state"] == "running"
    await clock.advance(1)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_a_timeout_already_passed_scales_at_the_update(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """A timeout shorter than the idle time so far scales the endpoint at the update, not before it."""
    await set_endpoint(client, NAME, state="running")
    await clock.advance(10 * MINUTE)
    updated = clock.now()
    answer = await _update(client, {"scaleToZeroTimeout": 5})
    assert answer["status"]["state"] == "scaledToZero"
    assert await _updated_at(hub) == updated


async def test_after_a_resume_the_timer_is_off_until_the_counts_are_put_back(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """Resume sets 1/1, so nothing scales; an update back to min 0 / max 1 turns the timer on again."""
    await hub("pause_inference_endpoint", NAME)
    await hub("resume_inference_endpoint", NAME)
    await clock.advance(PENDING + COLD_START + 2 * TIMEOUT)
    assert (await _status(client))["state"] == "running"
    assert (await client.post(CHAT, json=chat_body())).status_code == 200
    answer = await _update(client, {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 15})
    assert answer["compute"]["scaling"]["maxReplica"] == 1
    assert answer["status"]["state"] == "running"
    await clock.advance(TIMEOUT)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_counts_put_back_during_the_start_count_from_running(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """Counts put back while the endpoint starts: the timer runs N minutes from the moment it runs."""
    await hub("resume_inference_endpoint", NAME)
    await _update(client, {"minReplica": 0, "maxReplica": 1})
    await clock.advance(PENDING + COLD_START + TIMEOUT - 1)
    assert (await _status(client))["state"] == "running"
    await clock.advance(1)
    assert (await _status(client))["state"] == "scaledToZero"


async def test_the_minute_is_configurable(clock: ManualClock) -> None:
    """SimulatorConfig.minute sets how long one minute of the timer lasts."""
    config = SimulatorConfig(initial_state="running", minute=2.0, tokens_per_second=math.inf)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        SimulatorServer(config, clock=clock) as sim,
        httpx2.AsyncClient(base_url=sim.url, headers=headers) as client,
    ):
        await clock.advance(15 * 2.0 - 0.5)
        assert (await _status(client))["state"] == "running"
        await clock.advance(0.5)
        assert (await _status(client))["state"] == "scaledToZero"


def test_the_minute_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRAZY_GARY_SIM_MINUTE sets SimulatorConfig.minute; 60 seconds without it; nonsense is refused."""
    monkeypatch.delenv("CRAZY_GARY_SIM_MINUTE", raising=False)
    assert load_simulator_config().minute == 60.0
    monkeypatch.setenv("CRAZY_GARY_SIM_MINUTE", "0.5")
    assert load_simulator_config().minute == 0.5
    monkeypatch.setenv("CRAZY_GARY_SIM_MINUTE", "0")
    with pytest.raises(ConfigError, match="CRAZY_GARY_SIM_MINUTE"):
        load_simulator_config()


def test_config_refuses_a_minute_of_no_length() -> None:
    """A minute must last a positive, finite number of seconds."""
    for minute in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="minute"):
            SimulatorConfig(minute=minute)
