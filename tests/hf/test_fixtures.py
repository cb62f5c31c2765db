"""Real endpoint objects (from huggingface_hub's own tests) through our adapter, and the simulator's drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import InferenceEndpoint

from crazy_gary.clock import ManualClock
from crazy_gary.hf.answers import to_upstream
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))


def _load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return raw


def test_the_fixtures_are_there() -> None:
    """Every fixture the README lists is present, and the README names each file."""
    readme = (FIXTURES / "README.md").read_text()
    assert len(FIXTURE_FILES) >= 5
    for path in FIXTURE_FILES:
        assert f"`{path.name}`" in readme


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.stem)
def test_real_objects_map_onto_upstream_endpoints(path: Path) -> None:
    """Each real object parses with huggingface_hub and maps field by field onto an UpstreamEndpoint."""
    raw = json.loads(path.read_text())
    endpoint = InferenceEndpoint.from_raw(raw, namespace="demo")
    upstream = to_upstream(endpoint.raw, endpoint.namespace)
    status, compute, scaling = raw["status"], raw["compute"], raw["compute"]["scaling"]
    assert (upstream.namespace, upstream.name) == ("demo", raw["name"])
    assert upstream.state == status["state"] == endpoint.status
    assert upstream.url == status.get("url") == endpoint.url
    assert upstream.message == status["message"]
    assert upstream.repository == raw["model"]["repository"]
    assert (upstream.vendor, upstream.region) == (raw["provider"]["vendor"], raw["provider"]["region"])
    assert upstream.instance_type == compute["instanceType"]
    assert upstream.instance_size == compute["instanceSize"]
    assert upstream.health_route == raw["healthRoute"]
    assert (upstream.min_replica, upstream.max_replica) == (scaling["minReplica"], scaling["maxReplica"])
    assert upstream.scale_to_zero_timeout == scaling.get("scaleToZeroTimeout")


@pytest.fixture
async def simulated_running() -> dict[str, Any]:
    """The simulator's object for a running gpt-oss-120b, as GET /v2/endpoint/demo/gpt-oss-120b answers it."""
    async with SimulatorServer(SimulatorConfig(initial_state="running"), clock=ManualClock()) as sim:
        headers = {"Authorization": "Bearer hf_simulator"}
        async with httpx2.AsyncClient(base_url=sim.management_url, headers=headers) as client:
            response = await client.get("/endpoint/demo/gpt-oss-120b")
    assert response.status_code == 200
    raw: dict[str, Any] = response.json()
    return raw


def _missing(real: dict[str, Any], simulated: dict[str, Any], *sections: str) -> set[str]:
    """Keys of `real` absent from `simulated`, at the top and in each dotted section."""
    missing = {key for key in real if key not in simulated}
    for section in sections:
        real_part, simulated_part = real, simulated
        for key in section.split("."):
            real_part, simulated_part = real_part[key], simulated_part.get(key, {})
        missing |= {f"{section}.{key}" for key in real_part if key not in simulated_part}
    return missing


async def test_simulated_objects_carry_every_key_of_the_real_running_one(
    simulated_running: dict[str, Any],
) -> None:
    """Drift check: the simulator's running object has every key of the real one, level by level."""
    real = _load("mock_running.json")
    sections = ("status", "provider", "compute", "compute.scaling", "model")
    assert _missing(real, simulated_running, *sections) == set()
    assert simulated_running["status"]["state"] == real["status"]["state"]
    assert simulated_running["status"]["message"] == real["status"]["message"]
    assert set(simulated_running["status"]["createdBy"]) == set(real["status"]["createdBy"])


async def test_simulated_objects_carry_the_scaling_keys_of_the_real_api(
    simulated_running: dict[str, Any],
) -> None:
    """Drift check: compute and scaling carry what the real API adds (id, measure, metric, timeout)."""
    real = _load("catalog_pending.json")
    assert _missing(real["compute"], simulated_running["compute"], "scaling") == set()
    assert set(real["model"]) <= set(simulated_running["model"])
    image = simulated_running["model"]["image"]["vLLM"]
    assert {"url", "healthRoute", "port"} <= set(image)
    metric = simulated_running["compute"]["scaling"]["metric"]
    assert metric == real["compute"]["scaling"]["metric"]
    assert set(simulated_running["compute"]["scaling"]["measure"]) == {metric}


async def test_the_simulated_object_maps_like_the_real_ones(simulated_running: dict[str, Any]) -> None:
    """The simulator's object goes through huggingface_hub and our adapter as the real ones do."""
    endpoint = InferenceEndpoint.from_raw(simulated_running, namespace="demo")
    upstream = to_upstream(endpoint.raw, "demo")
    assert (upstream.state, upstream.repository, upstream.instance) == (
        "running",
        "openai/gpt-oss-120b",
        "aws nvidia-h200 x1",
    )
    assert (upstream.min_replica, upstream.max_replica, upstream.scale_to_zero_timeout) == (0, 1, 15)
