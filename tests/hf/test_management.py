"""HfManagement against the simulator over loopback: huggingface_hub underneath, our errors on top."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
import stamina

from crazy_gary.errors import ManagementAuthError, ManagementRejected, ManagementUnavailable
from crazy_gary.hf.management import HfManagement
from crazy_gary.simulator import SimulatorConfig, SimulatorServer


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorConfig(cold_start=0.2, tokens_per_second=10_000)) as server:
        yield server


@pytest.fixture
async def hf(sim: SimulatorServer) -> AsyncIterator[HfManagement]:
    management = HfManagement("hf_simulator", sim.management_url)
    yield management
    await management.aclose()


async def control(sim: SimulatorServer, path: str, body: dict[str, object]) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.put(f"{sim.url}/_sim/{path}", json=body)
        response.raise_for_status()


async def calls(sim: SimulatorServer) -> dict[str, object]:
    async with httpx2.AsyncClient() as http:
        result: dict[str, object] = (await http.get(f"{sim.url}/_sim/calls")).json()
        return result


async def test_list_and_get_describe_the_endpoints(hf: HfManagement, sim: SimulatorServer) -> None:
    """Listing reads every endpoint of the namespace in one call, with model and instance."""
    listed = {endpoint.name: endpoint for endpoint in await hf.list("demo")}
    assert set(listed) == {"gpt-oss-120b", "gpt-oss-20b", "bge-small-en"}
    assert listed["bge-small-en"].task == "sentence-embeddings"
    assert listed["gpt-oss-20b"].task == "text-generation"
    big = listed["gpt-oss-120b"]
    assert big.state == "scaledToZero"
    assert big.repository == "openai/gpt-oss-120b"
    assert big.instance == "aws nvidia-h200 x1"
    assert big.url == f"{sim.url}/endpoints/gpt-oss-120b"
    assert (await hf.get("demo", "gpt-oss-20b")).instance == "aws nvidia-l4 x1"
    counted = await calls(sim)
    assert counted["_list"] == 1


async def test_wrong_token_names_the_variable(sim: SimulatorServer) -> None:
    """A refused token becomes one error naming HUGGINGFACE_API_KEY, without the token."""
    management = HfManagement("hf_wrong_token_value", sim.management_url)
    with pytest.raises(ManagementAuthError) as raised:
        await management.list("demo")
    assert "HUGGINGFACE_API_KEY" in raised.value.message
    assert "hf_wrong_token_value" not in raised.value.message
    await management.aclose()


async def test_pause_resume_scale_to_zero(hf: HfManagement) -> None:
    """The three operations return the endpoint in its new state."""
    assert (await hf.resume("demo", "gpt-oss-20b")).state == "pending"  # waiting to be scheduled
    paused = await hf.pause("demo", "gpt-oss-20b")
    assert paused.state == "paused"
    assert paused.url is None
    assert (await hf.resume("demo", "gpt-oss-20b")).state == "pending"
    assert (await hf.scale_to_zero("demo", "gpt-oss-20b")).state == "scaledToZero"


async def test_resume_of_running_is_fine(hf: HfManagement, sim: SimulatorServer) -> None:
    """Resuming a running endpoint answers it running (running_ok)."""
    await control(sim, "endpoints/gpt-oss-20b", {"state": "running"})
    assert (await hf.resume("demo", "gpt-oss-20b")).state == "running"


async def test_resume_of_failed_is_rejected(hf: HfManagement, sim: SimulatorServer) -> None:
    """HF refuses to resume a failed endpoint; that is a rejection, not retried."""
    await control(sim, "endpoints/gpt-oss-20b", {"state": "failed"})
    with pytest.raises(ManagementRejected) as raised:
        await hf.resume("demo", "gpt-oss-20b")
    assert raised.value.status_code == 400
    counted = await calls(sim)
    assert counted["gpt-oss-20b"]["resume"] == 1  # type: ignore[index]


async def test_unknown_endpoint_is_rejected_with_404(hf: HfManagement) -> None:
    """An endpoint HF does not have is a 404 rejection."""
    with pytest.raises(ManagementRejected) as raised:
        await hf.get("demo", "gpt-nothing")
    assert raised.value.status_code == 404


async def test_transient_faults_are_retried(hf: HfManagement, sim: SimulatorServer) -> None:
    """503s from the management API are retried; a call succeeds once one attempt gets through."""
    await control(sim, "management", {"error_rate": 1.0, "error_status": 503})
    with pytest.raises(ManagementUnavailable):
        await hf.get("demo", "gpt-oss-120b")
    counted = await calls(sim)
    assert counted["gpt-oss-120b"]["get"] == 3  # type: ignore[index]
    await control(sim, "management", {"error_rate": 0.5, "error_status": 503})
    with stamina.set_testing(True, attempts=12):
        for _ in range(5):
            assert (await hf.get("demo", "gpt-oss-120b")).name == "gpt-oss-120b"


async def test_unreachable_management_api() -> None:
    """A management API nobody listens on is `ManagementUnavailable`."""
    management = HfManagement("hf_simulator", "http://127.0.0.1:9/v2", timeout=1.0)
    with pytest.raises(ManagementUnavailable) as raised:
        await management.list("demo")
    assert "could not be reached" in raised.value.message
    await management.aclose()


async def test_poke_starts_a_scaled_to_zero_endpoint(hf: HfManagement, sim: SimulatorServer) -> None:
    """One request to a scaled-to-zero endpoint's address starts a replica."""
    await hf.poke(f"{sim.url}/endpoints/gpt-oss-120b")
    assert (await hf.get("demo", "gpt-oss-120b")).state == "pending"
    counted = await calls(sim)
    assert counted["gpt-oss-120b"]["starts"] == 1  # type: ignore[index]


async def test_probe(hf: HfManagement, sim: SimulatorServer) -> None:
    """probe is True only when the health route answers 200."""
    assert not await hf.probe(f"{sim.url}/endpoints/gpt-oss-20b")
    await control(sim, "endpoints/gpt-oss-20b", {"state": "running"})
    assert await hf.probe(f"{sim.url}/endpoints/gpt-oss-20b")
    assert not await hf.probe("http://127.0.0.1:9")
