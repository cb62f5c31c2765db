"""HfManagement against Hugging Face's real habits, as the simulator plays them: rate limits with
`Retry-After`, namespaces without access, malformed answers, scaling updates, what starts a replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.errors import ManagementAuthError, ManagementUnavailable
from crazy_gary.hf.answers import retry_after
from crazy_gary.hf.management import HfManagement
from crazy_gary.simulator import SimulatorConfig, SimulatorServer


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(
        SimulatorConfig(cold_start=20, tokens_per_second=10_000), clock=clock
    ) as server:
        yield server


@pytest.fixture
async def hf(sim: SimulatorServer, clock: ManualClock) -> AsyncIterator[HfManagement]:
    management = HfManagement("hf_simulator", sim.management_url, clock=clock)
    yield management
    await management.aclose()


async def control(sim: SimulatorServer, path: str, body: dict[str, object]) -> None:
    async with httpx2.AsyncClient() as http:
        (await http.put(f"{sim.url}/_sim/{path}", json=body)).raise_for_status()


async def sim_calls(sim: SimulatorServer) -> dict[str, object]:
    async with httpx2.AsyncClient() as http:
        answer: dict[str, object] = (await http.get(f"{sim.url}/_sim/calls")).json()
        return answer


async def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for a worker thread's call to land (real time, bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_429_with_retry_after_is_not_asked_again_before_it(
    hf: HfManagement, sim: SimulatorServer, clock: ManualClock
) -> None:
    """After a 429 with `Retry-After: 6` the management API is not asked again for 6 s, by this call
    or any other; then the call goes through."""
    await control(sim, "management", {"error_rate": 1.0, "error_status": 429, "retry_after": 6})
    listing = asyncio.create_task(hf.list("demo"))
    await eventually(lambda: sim.app.state.world.list_calls == 1)  # type: ignore[attr-defined]
    # the 429 is read off the event loop: the next call is made once it has closed the gate
    await eventually(lambda: hf._closed_until > clock.monotonic())
    reading = asyncio.create_task(hf.get("demo", "gpt-oss-20b"))
    await asyncio.sleep(0.2)  # give a wrongly eager retry the time to show itself
    await clock.advance(5.5)
    await asyncio.sleep(0.2)
    counted = await sim_calls(sim)
    assert counted["_list"] == 1
    assert counted["gpt-oss-20b"]["get"] == 0  # type: ignore[index]
    await control(sim, "management", {"error_rate": 0.0})
    await clock.advance(1)
    assert len(await asyncio.wait_for(listing, 5)) >= 2
    assert (await asyncio.wait_for(reading, 5)).name == "gpt-oss-20b"


async def test_a_foreign_namespace_names_itself_the_token_and_billing(hf: HfManagement) -> None:
    """A namespace the token cannot use answers 401; the error names the namespace and the three causes."""
    with pytest.raises(ManagementAuthError) as raised:
        await hf.list("someone-else")
    message = raised.value.message
    assert "'someone-else'" in message and "HUGGINGFACE_API_KEY" in message and "billing" in message


async def test_a_malformed_answer_is_unavailable_with_a_reason(
    hf: HfManagement, sim: SimulatorServer
) -> None:
    """Endpoint objects without `status` are an error with a reason, not a crash; the next proper
    answer reads well again."""
    await control(sim, "management", {"malformed_rate": 1.0})
    with pytest.raises(ManagementUnavailable) as raised:
        await hf.list("demo")
    assert "nonsense" in raised.value.message and "status" in raised.value.message
    with pytest.raises(ManagementUnavailable):
        await hf.get("demo", "gpt-oss-120b")
    await control(sim, "management", {"malformed_rate": 0.0})
    assert {e.name for e in await hf.list("demo")} == {"gpt-oss-120b", "gpt-oss-20b", "bge-small-en"}


async def test_scaling_is_read_and_updated(hf: HfManagement) -> None:
    """The replica counts and HF's idle timer are read from the endpoint object and can be set."""
    before = await hf.get("demo", "gpt-oss-120b")
    assert (before.min_replica, before.max_replica) == (0, 1)
    after = await hf.update_scaling(
        "demo", "gpt-oss-120b", min_replica=0, max_replica=1, scale_to_zero_timeout=30
    )
    assert after.scale_to_zero_timeout == 30
    assert (await hf.get("demo", "gpt-oss-120b")).scale_to_zero_timeout == 30


async def test_only_inference_starts_an_endpoint_that_ignores_its_health_route(
    hf: HfManagement, sim: SimulatorServer
) -> None:
    """With `start_on: inference`, a GET of the health route leaves the endpoint asleep and one
    minimal inference request starts it."""
    await control(sim, "endpoints/gpt-oss-120b", {"start_on": "inference"})
    url = f"{sim.url}/endpoints/gpt-oss-120b"
    await hf.poke(url, "/health")
    assert (await hf.get("demo", "gpt-oss-120b")).state == "scaledToZero"
    await hf.send_inference(url, "gpt-oss-120b")
    assert (await hf.get("demo", "gpt-oss-120b")).state in ("pending", "initializing")


def test_retry_after_reads_seconds_dates_and_ratelimit() -> None:
    """`Retry-After` in seconds or as an HTTP date, else a `RateLimit` header with nothing left."""
    assert retry_after({"retry-after": "6"}) == 6.0
    moment = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert (
        retry_after({"retry-after": format_datetime(moment, usegmt=True)}, now=moment.timestamp() - 30) == 30
    )
    assert retry_after({"ratelimit": '"api";r=0;t=42'}) == 42.0
    assert retry_after({"ratelimit": '"api";r=3;t=42'}) is None
    assert retry_after({}) is None
