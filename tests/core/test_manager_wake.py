"""HuggingFaceEndpointManager on the manual clock: waking an endpoint, once, and a wake that fails."""

from __future__ import annotations

import asyncio

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager

from ._specs import ERROR, RUNNING, STARTING
from .fakes import FakeManagement


async def test_wake_scaled_to_zero_pokes_and_runs(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A scaled-to-zero endpoint is started by a request to its address, then runs after the cold start."""
    result = manager.wake("120b")
    assert result.started and result.status is STARTING
    await clock.settle()
    assert hf.calls["poke"] == 1 and hf.calls["resume"] == 0
    assert manager.status("120b").status is STARTING
    await clock.advance(21)
    view = manager.status("120b")
    assert view.status is RUNNING
    assert view.wake_time == pytest.approx(clock.now() - 21)
    assert view.auto_sleep_in is not None and 895 <= view.auto_sleep_in <= 900


async def test_wake_paused_resumes(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A paused endpoint is resumed through the management API."""
    manager.wake("20b")
    await clock.advance(25)
    assert hf.calls["resume"] == 1
    assert manager.status("20b").status is RUNNING


async def test_fifty_concurrent_wakes_make_one_upstream_call(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Fifty callers asking at once cause one start upstream; only the first one starts it."""
    outcomes = [manager.wake("120b") for _ in range(50)]
    await clock.advance(30)
    assert sum(outcome.started for outcome in outcomes) == 1
    assert hf.calls["poke"] + hf.calls["resume"] == 1
    assert hf.calls["starts"] == 1
    assert manager.status("120b").status is RUNNING


async def test_wake_of_running_endpoint_changes_nothing(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Waking a running endpoint answers its state and calls nothing upstream."""
    hf.records["gpt-oss-120b"].state = "running"
    await clock.advance(10)
    calls = dict(hf.calls)
    result = manager.wake("120b")
    assert not result.started and result.status is RUNNING
    await clock.settle()
    assert hf.calls["resume"] == calls.get("resume", 0) and hf.calls["poke"] == 0


async def test_wake_timeout_shows_error(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A wake that outlives the wake timeout turns the endpoint to `error` with a reason."""
    hf.cold_start = 10_000
    manager.wake("120b")
    await clock.advance(299)
    assert manager.status("120b").status is STARTING
    await clock.advance(2)
    view = manager.status("120b")
    assert view.status is ERROR
    assert view.error is not None and "300" in view.error


async def test_failed_endpoint_resume_refused_is_error(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """An operator's wake of a failed endpoint that HF refuses ends in `error` with HF's reason."""
    hf.records["gpt-oss-20b"].state = "failed"
    await clock.advance(10)
    assert manager.status("20b").status is ERROR
    assert manager.status("20b").error == "Hugging Face reports the endpoint failed."
    manager.wake("20b")
    await clock.settle()
    view = manager.status("20b")
    assert view.status is ERROR and "refused" in (view.error or "")


async def test_wait_for_running(manager: HuggingFaceEndpointManager, clock: ManualClock) -> None:
    """wait_for returns once the endpoint runs."""
    manager.wake("120b")
    waiter = asyncio.create_task(manager.wait_for("120b", {RUNNING, ERROR}, 300))
    await clock.advance(25)
    assert (await waiter).status is RUNNING
