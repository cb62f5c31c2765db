"""The management API v2, driven through huggingface_hub's own client."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from huggingface_hub import InferenceEndpoint
from huggingface_hub.errors import HfHubHTTPError

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorServer

from ._helpers import COLD_START, NAMESPACE, PENDING, HubCall, calls, set_endpoint, until


async def test_list_parses_into_inference_endpoints(hub: HubCall, sim: SimulatorServer) -> None:
    """Listing the namespace gives every seeded endpoint, scaled to zero, with their own URLs."""
    endpoints = await hub("list_inference_endpoints")
    by_name = {endpoint.name: endpoint for endpoint in endpoints}
    assert sorted(by_name) == ["bge-small-en", "gpt-oss-120b", "gpt-oss-20b"]
    big = by_name["gpt-oss-120b"]
    assert isinstance(big, InferenceEndpoint)
    assert big.status == "scaledToZero"
    assert big.url == f"{sim.url}/endpoints/gpt-oss-120b"
    assert big.repository == "openai/gpt-oss-120b"
    assert big.namespace == NAMESPACE


async def test_get_answers_the_real_endpoint_shape(hub: HubCall) -> None:
    """An endpoint's JSON carries the fields of the real API, and no namespace."""
    endpoint = await hub("get_inference_endpoint", "gpt-oss-20b")
    raw = endpoint.raw
    assert set(raw) == {"name", "type", "accountId", "provider", "compute", "model", "healthRoute", "status"}
    assert raw["provider"] == {"vendor": "aws", "region": "us-east-1"}
    assert raw["type"] == "authenticated"
    assert raw["compute"]["instanceType"] == "nvidia-l4"
    assert raw["compute"]["id"] == "aws-us-east-1-nvidia-l4-x1"
    assert raw["compute"]["scaling"] == {
        "minReplica": 0,
        "maxReplica": 1,
        "scaleToZeroTimeout": 15,
        "measure": {"hardwareUsage": None},
        "metric": "hardwareUsage",
    }
    image = {"vLLM": {"url": "vllm/vllm-openai:latest", "healthRoute": "/health", "port": 80}}
    assert raw["model"]["image"] == image
    assert raw["status"]["createdAt"] == "2023-11-14T22:13:20.000Z"
    assert raw["status"]["createdBy"] == raw["status"]["updatedBy"]
    assert set(raw["status"]["createdBy"]) == {"id", "name"}
    assert raw["status"]["private"] is None
    assert (endpoint.framework, endpoint.revision, endpoint.task) == ("pytorch", "main", "text-generation")
    assert endpoint.health_route == "/health"


async def test_wrong_token_is_refused(hub: HubCall, client: httpx2.AsyncClient) -> None:
    """Any token but the configured one, or none, gets 401 from the management API."""
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("get_inference_endpoint", "gpt-oss-20b", token="hf_wrong")
    assert caught.value.response.status_code == 401
    response = await client.get(f"/v2/endpoint/{NAMESPACE}", headers={"Authorization": ""})
    assert response.status_code == 401
    assert "error" in response.json()


async def test_unknown_names_and_namespaces(hub: HubCall, client: httpx2.AsyncClient) -> None:
    """An unknown endpoint is a 404 JSON error; a namespace the token may not use is a 401."""
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("get_inference_endpoint", "nope")
    assert caught.value.response.status_code == 404
    assert "error" in caught.value.response.json()
    with pytest.raises(HfHubHTTPError) as refused:
        await hub("list_inference_endpoints", namespace="someone-else")
    assert refused.value.response.status_code == 401
    response = await client.post(f"/v2/endpoint/{NAMESPACE}/nope/pause")
    assert response.status_code == 404


async def test_resume_from_scaled_to_zero_runs_after_the_cold_start(hub: HubCall, clock: ManualClock) -> None:
    """Resume starts a start: pending for a second, initializing for the cold start, then running."""
    endpoint = await hub("resume_inference_endpoint", "gpt-oss-120b")
    assert endpoint.status == "pending"
    await clock.advance(PENDING)
    assert (await hub("get_inference_endpoint", "gpt-oss-120b")).status == "initializing"
    await clock.advance(COLD_START - 0.5)
    assert (await hub("get_inference_endpoint", "gpt-oss-120b")).status == "initializing"
    await clock.advance(0.5)
    endpoint = await hub("get_inference_endpoint", "gpt-oss-120b")
    assert endpoint.status == "running"
    assert endpoint.raw["status"]["readyReplica"] == 1
    assert (endpoint.updated_at - endpoint.created_at).total_seconds() == PENDING + COLD_START


async def test_resume_of_a_running_endpoint_is_ok_with_running_ok(
    hub: HubCall, client: httpx2.AsyncClient
) -> None:
    """Resume of a running endpoint answers 400 "already running", which running_ok=True accepts."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    endpoint = await hub("resume_inference_endpoint", "gpt-oss-20b", running_ok=True)
    assert endpoint.status == "running"
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("resume_inference_endpoint", "gpt-oss-20b", running_ok=False)
    assert caught.value.response.status_code == 400
    assert "already running" in caught.value.response.text


async def test_resume_while_initializing_changes_nothing(hub: HubCall, client: httpx2.AsyncClient) -> None:
    """A second resume during a start answers the endpoint and begins no second start."""
    await hub("resume_inference_endpoint", "gpt-oss-20b")
    endpoint = await hub("resume_inference_endpoint", "gpt-oss-20b")
    assert endpoint.status == "pending"
    assert (await calls(client))["gpt-oss-20b"]["starts"] == 1


@pytest.mark.parametrize("state", ["failed", "updateFailed"])
async def test_resume_of_a_failed_endpoint_is_400(
    hub: HubCall, client: httpx2.AsyncClient, state: str
) -> None:
    """A failed endpoint cannot be resumed: 400."""
    await set_endpoint(client, "gpt-oss-120b", state=state)
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("resume_inference_endpoint", "gpt-oss-120b", running_ok=True)
    assert caught.value.response.status_code == 400


async def test_pause_clears_the_url_and_scale_to_zero_keeps_it(hub: HubCall, sim: SimulatorServer) -> None:
    """A paused endpoint has no URL; a scaled-to-zero one keeps it; resume of paused starts it."""
    paused = await hub("pause_inference_endpoint", "gpt-oss-120b")
    assert (paused.status, paused.url) == ("paused", None)
    resumed = await hub("resume_inference_endpoint", "gpt-oss-120b")
    assert resumed.status == "pending"
    scaled = await hub("scale_to_zero_inference_endpoint", "gpt-oss-120b")
    assert (scaled.status, scaled.url) == ("scaledToZero", f"{sim.url}/endpoints/gpt-oss-120b")


async def test_update_merges_the_partial_config(hub: HubCall) -> None:
    """Update merges what it is sent (here the scaling) and leaves the state alone."""
    endpoint = await hub("update_inference_endpoint", "gpt-oss-120b", scale_to_zero_timeout=30, max_replica=2)
    scaling = endpoint.raw["compute"]["scaling"]
    assert (scaling["minReplica"], scaling["maxReplica"], scaling["scaleToZeroTimeout"]) == (0, 2, 30)
    assert endpoint.raw["compute"]["instanceType"] == "nvidia-h200"
    assert endpoint.status == "scaledToZero"


async def test_update_with_an_invalid_config_is_400(client: httpx2.AsyncClient) -> None:
    """An update the real API would refuse (minReplica above maxReplica) is a 400 and changes nothing."""
    body = {"compute": {"scaling": {"minReplica": 3}}}
    response = await client.put(f"/v2/endpoint/{NAMESPACE}/gpt-oss-120b", json=body)
    assert response.status_code == 400
    after = (await client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-120b")).json()
    assert after["compute"]["scaling"]["minReplica"] == 0


async def test_create_goes_pending_then_initializing_then_running(
    hub: HubCall, clock: ManualClock, client: httpx2.AsyncClient
) -> None:
    """A created endpoint is pending for a second, initializes for its cold start, then runs."""
    created = await hub(
        "create_inference_endpoint",
        "my-endpoint",
        repository="openai/gpt-oss-20b",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-l4",
        region="us-east-1",
        vendor="aws",
        min_replica=0,
        scale_to_zero_timeout=15,
        task="text-generation",
        custom_image={"vllm": {"url": "vllm/vllm-openai:latest"}},
    )
    assert (created.status, created.revision, created.type) == ("pending", "main", "authenticated")
    await clock.advance(1)
    assert (await hub("get_inference_endpoint", "my-endpoint")).status == "initializing"
    await clock.advance(COLD_START)
    assert (await hub("get_inference_endpoint", "my-endpoint")).status == "running"
    assert (await calls(client))["my-endpoint"]["starts"] == 1
    await hub("delete_inference_endpoint", "my-endpoint")
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("get_inference_endpoint", "my-endpoint")
    assert caught.value.response.status_code == 404


def _create_kwargs() -> dict[str, object]:
    return {
        "repository": "openai/gpt-oss-20b",
        "framework": "pytorch",
        "accelerator": "gpu",
        "instance_size": "x1",
        "instance_type": "nvidia-l4",
        "region": "us-east-1",
        "vendor": "aws",
    }


async def test_create_of_an_existing_name_is_409(hub: HubCall) -> None:
    """Creating an endpoint under a name already taken is a 409."""
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("create_inference_endpoint", "gpt-oss-20b", **_create_kwargs())
    assert caught.value.response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"name": "UPPER"}',
        b'{"name": "ok-name", "type": "public", "provider": {"vendor": "aws"}}',
    ],
)
async def test_create_with_a_bad_body_is_400(client: httpx2.AsyncClient, body: bytes) -> None:
    """Malformed or incomplete create bodies get a 400 JSON error, not a traceback."""
    response = await client.post(f"/v2/endpoint/{NAMESPACE}", content=body)
    assert response.status_code == 400
    assert "error" in response.json()


async def test_fifty_created_endpoints_are_listed(hub: HubCall) -> None:
    """Fifty endpoints created through huggingface_hub all show up in one list call."""
    for number in range(50):
        await hub("create_inference_endpoint", f"bulk-{number:02d}", **_create_kwargs())
    endpoints = await hub("list_inference_endpoints")
    names = {endpoint.name for endpoint in endpoints}
    assert len(endpoints) == 53
    assert {f"bulk-{number:02d}" for number in range(50)} <= names


async def test_hardware_carries_the_price_list(hub: HubCall, client: httpx2.AsyncClient) -> None:
    """The provider route parses into InferenceEndpointHardware with HF's prices and live quota use."""
    await set_endpoint(client, "gpt-oss-120b", state="running")
    hardware = {item.id: item for item in await hub("list_inference_endpoints_hardware")}
    h200 = hardware["aws-us-east-1-nvidia-h200-x1"]
    assert (h200.vendor, h200.region, h200.instance_type, h200.instance_size) == (
        "aws",
        "us-east-1",
        "nvidia-h200",
        "x1",
    )
    assert h200.price_per_hour == 5.0
    assert h200.used_accelerators == 1
    assert hardware["aws-us-east-1-nvidia-l4-x1"].price_per_hour == 0.8
    assert hardware["aws-us-east-1-nvidia-l4-x1"].used_accelerators == 0
    assert hardware["aws-us-east-1-nvidia-h100-x8"].num_accelerators == 8
    assert hardware["aws-us-east-1-nvidia-h100-x8"].price_per_hour == 36.0


async def test_management_faults_surface_as_hub_errors(hub: HubCall, client: httpx2.AsyncClient) -> None:
    """With management error_rate 1 every call answers error_status, and is still counted."""
    response = await client.put("/_sim/management", json={"error_rate": 1})
    assert response.json() == {
        "error_rate": 1.0,
        "error_status": 503,
        "latency_ms": 0.0,
        "malformed_rate": 0.0,
        "retry_after": None,
    }
    with pytest.raises(HfHubHTTPError) as caught:
        await hub("get_inference_endpoint", "gpt-oss-120b")
    assert caught.value.response.status_code == 503
    with pytest.raises(HfHubHTTPError):
        await hub("list_inference_endpoints")
    counted = await calls(client)
    assert (counted["gpt-oss-120b"]["get"], counted["_list"]) == (1, 1)
    await client.put("/_sim/management", json={"error_rate": 0})
    assert (await hub("get_inference_endpoint", "gpt-oss-120b")).status == "scaledToZero"


async def test_management_latency_waits_on_the_clock(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """Management latency is clock time: the answer comes once the clock has moved past it."""
    await client.put("/_sim/management", json={"latency_ms": 3000})
    pending = asyncio.ensure_future(client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b"))
    await until(lambda: clock.sleepers > 0)
    await clock.advance(2.9)
    assert not pending.done()
    await clock.advance(0.1)
    assert (await pending).status_code == 200
