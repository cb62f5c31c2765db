"""Endpoint objects with the fields the real API sends, and the replica counts pause and resume set."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from crazy_gary.clock import ManualClock

from ._helpers import COLD_START, NAMESPACE, PENDING, HubCall, set_endpoint

NAME = "gpt-oss-120b"
ONE = f"/v2/endpoint/{NAMESPACE}/{NAME}"


def _create_body(name: str = "fresh", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": {"vendor": "aws", "region": "us-east-1"},
        "compute": {
            "accelerator": "gpu",
            "instanceType": "nvidia-l4",
            "instanceSize": "x1",
            "scaling": {"minReplica": 0, "maxReplica": 1},
        },
        "model": {"repository": "openai/gpt-oss-20b", "framework": "pytorch"},
        **extra,
    }


async def _get(client: httpx2.AsyncClient, path: str = ONE) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _scaling(client: httpx2.AsyncClient) -> tuple[int, int]:
    scaling = (await _get(client))["compute"]["scaling"]
    return scaling["minReplica"], scaling["maxReplica"]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("pending", "Endpoint waiting to be scheduled"),
        ("initializing", "Endpoint is initializing"),
        ("running", "Endpoint is ready"),
        ("failed", "Endpoint failed to deploy"),
        ("paused", "Endpoint is paused"),
        ("scaledToZero", "Endpoint is scaled to zero"),
    ],
)
async def test_each_state_has_its_message(client: httpx2.AsyncClient, state: str, message: str) -> None:
    """status.message says what HF says in each state."""
    await set_endpoint(client, NAME, state=state)
    status = (await _get(client))["status"]
    assert (status["state"], status["message"]) == (state, message)


async def test_status_names_who_created_and_updated_it(client: httpx2.AsyncClient) -> None:
    """status carries createdBy and updatedBy as {id, name}, and private (null for these endpoints)."""
    status = (await _get(client))["status"]
    assert status["createdBy"] == status["updatedBy"]
    assert set(status["createdBy"]) == {"id", "name"}
    assert len(status["createdBy"]["id"]) == 24
    assert status["private"] is None


async def test_a_paused_endpoint_has_no_url_and_a_scaled_one_keeps_it(
    client: httpx2.AsyncClient, hub: HubCall
) -> None:
    """status.url is absent while paused and present while scaled to zero."""
    assert "url" in (await _get(client))["status"]
    await hub("pause_inference_endpoint", NAME)
    assert "url" not in (await _get(client))["status"]


async def test_create_fills_in_what_the_real_api_adds(client: httpx2.AsyncClient) -> None:
    """A created endpoint gets compute.id, measure and metric, the UI's 60 minutes, env and no secrets."""
    body = _create_body()
    body["model"]["secrets"] = {"TOKEN": "hf_secret_value"}
    response = await client.post(f"/v2/endpoint/{NAMESPACE}", json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["type"] == "authenticated"
    assert created["compute"]["id"] == "aws-us-east-1-nvidia-l4-x1"
    scaling = created["compute"]["scaling"]
    assert scaling["scaleToZeroTimeout"] == 60
    assert (scaling["measure"], scaling["metric"]) == ({"hardwareUsage": None}, "hardwareUsage")
    assert (created["model"]["env"], created["model"]["secrets"]) == ({}, {})
    assert "hf_secret_value" not in response.text


async def test_create_keeps_an_explicit_null_timeout_and_the_old_type(client: httpx2.AsyncClient) -> None:
    """An explicit null scaleToZeroTimeout stays null at create; the deprecated type protected is accepted."""
    body = _create_body(type="protected")
    body["compute"]["scaling"]["scaleToZeroTimeout"] = None
    created = (await client.post(f"/v2/endpoint/{NAMESPACE}", json=body)).json()
    assert created["compute"]["scaling"]["scaleToZeroTimeout"] is None
    assert created["type"] == "protected"


async def test_create_through_huggingface_hub_sends_its_null(hub: HubCall) -> None:
    """huggingface_hub always sends scaleToZeroTimeout; left unset it is null, and so it stays."""
    endpoint = await hub(
        "create_inference_endpoint",
        "via-hub",
        repository="openai/gpt-oss-20b",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-l4",
        region="us-east-1",
        vendor="aws",
        min_replica=0,
    )
    assert endpoint.raw["compute"]["scaling"]["scaleToZeroTimeout"] is None
    assert endpoint.type == "authenticated"


async def test_a_measure_sent_names_its_metric(hub: HubCall) -> None:
    """An update of the scaling measure replaces the old one and names the metric after it."""
    endpoint = await hub(
        "update_inference_endpoint", NAME, scaling_metric="pendingRequests", scaling_threshold=4
    )
    scaling = endpoint.raw["compute"]["scaling"]
    assert (scaling["measure"], scaling["metric"]) == ({"pendingRequests": 4}, "pendingRequests")


async def test_pause_sets_no_replica_and_resume_one(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """Pause sets minReplica and maxReplica to 0; resume sets both to 1, as Hugging Face documents."""
    paused = await hub("pause_inference_endpoint", NAME)
    scaling = paused.raw["compute"]["scaling"]
    assert (scaling["minReplica"], scaling["maxReplica"]) == (0, 0)
    resumed = await hub("resume_inference_endpoint", NAME)
    scaling = resumed.raw["compute"]["scaling"]
    assert (scaling["minReplica"], scaling["maxReplica"]) == (1, 1)
    await clock.advance(PENDING + COLD_START)
    assert await _scaling(client) == (1, 1)


async def test_resume_of_a_scaled_to_zero_endpoint_sets_one_replica(hub: HubCall) -> None:
    """Resume sets both counts to 1 whatever it resumes."""
    scaling = (await hub("resume_inference_endpoint", NAME)).raw["compute"]["scaling"]
    assert (scaling["minReplica"], scaling["maxReplica"]) == (1, 1)


async def test_a_paused_endpoint_takes_updates_with_no_replica(
    client: httpx2.AsyncClient, hub: HubCall
) -> None:
    """A paused endpoint (0/0) takes an update of its timeout, and one back to min 0 / max 1; it stays paused."""
    await hub("pause_inference_endpoint", NAME)
    timeout = {"compute": {"scaling": {"scaleToZeroTimeout": 30}}}
    assert (await client.put(ONE, json=timeout)).status_code == 200
    back = {"compute": {"scaling": {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 15}}}
    answer = (await client.put(ONE, json=back)).json()
    assert answer["compute"]["scaling"]["maxReplica"] == 1
    assert answer["status"]["state"] == "paused"


async def test_no_replica_is_refused_outside_a_pause(client: httpx2.AsyncClient) -> None:
    """maxReplica 0 is refused at create and in an update of an endpoint that is not paused."""
    body = _create_body()
    body["compute"]["scaling"]["maxReplica"] = 0
    created = await client.post(f"/v2/endpoint/{NAMESPACE}", json=body)
    assert created.status_code == 400
    assert "maxReplica" in created.json()["error"]
    updated = await client.put(ONE, json={"compute": {"scaling": {"maxReplica": 0}}})
    assert updated.status_code == 400
    assert await _scaling(client) == (0, 1)
