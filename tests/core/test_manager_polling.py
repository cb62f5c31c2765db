"""HuggingFaceEndpointManager on the manual clock: polling HF's state, stale answers, and names."""

from __future__ import annotations

import asyncio

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.errors import EndpointNotFound

from ._specs import RUNNING, SLEEPING, SPECS, UNKNOWN
from .fakes import FakeManagement


async def test_first_poll_reads_every_endpoint(manager: HuggingFaceEndpointManager) -> None:
    """After start-up every endpoint has been read once and shows HF's state."""
    assert manager.ready
    assert manager.status("120b").status is SLEEPING
    assert manager.status("20b").hf_state == "paused"


async def test_unreachable_management_shows_unknown_then_recovers(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """When the management API cannot be reached the state is `unknown`; it comes back by itself."""
    hf.down = True
    await clock.advance(10)
    assert manager.status("120b").status is UNKNOWN
    hf.down = False
    await clock.advance(1)
    assert manager.status("120b").status is SLEEPING


async def test_steady_polling_is_one_list_per_interval(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Steady endpoints cost one list call per slow interval, however often status is read."""
    before = hf.calls["list"]
    for _ in range(100):
        await clock.advance(1)
        manager.all_status()
    assert hf.calls["list"] - before == 10
    assert hf.calls["get"] == 0


async def test_resolve_by_key_name_and_repository(manager: HuggingFaceEndpointManager) -> None:
    """Endpoints answer to their key, HF name and repository; anything else is unknown."""
    assert manager.resolve("120b") == "120b"
    assert manager.resolve("gpt-oss-20b") == "20b"
    assert manager.resolve("openai/gpt-oss-120b") == "120b"
    with pytest.raises(EndpointNotFound):
        manager.resolve("gpt-5")


async def test_a_slow_poll_does_not_overwrite_a_newer_answer(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A list that began before a sleep and answers after it cannot make the endpoint look awake again."""
    hf.records["gpt-oss-20b"].state = "running"
    await clock.advance(10)
    assert manager.status("20b").status is RUNNING
    hf.list_gate = asyncio.Event()
    await clock.advance(10)  # the poller's list has read "running" and hangs
    manager.sleep("20b")
    await clock.settle()
    assert manager.status("20b").status is SLEEPING
    hf.list_gate.set()
    await clock.settle()
    assert manager.status("20b").status is SLEEPING
    assert manager.status("20b").hf_state == "scaledToZero"


async def test_a_poll_answered_from_before_a_pause_does_not_undo_it(
    clock: ManualClock, hf: FakeManagement
) -> None:
    """A list asked while a pause is under way may be answered from the state before the pause, and
    arrive after the pause's own answer: it cannot make the endpoint look awake again."""
    hf.records["gpt-oss-20b"].state = "running"
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, sleep_mode="pause", poll_interval=10, poll_fast_interval=1
    ) as manager:
        await clock.settle()
        assert manager.status("20b").status is RUNNING
        hf.pause_gate, hf.list_gate = asyncio.Event(), asyncio.Event()
        manager.sleep("20b")
        await clock.advance(1)  # the pause was asked; a list asked after it read "running" and hangs
        assert hf.calls["pause"] == 1
        assert hf.records["gpt-oss-20b"].state == "running"
        hf.pause_gate.set()
        await clock.settle()
        assert manager.status("20b").status is SLEEPING
        hf.list_gate.set()
        await clock.settle()
        assert manager.status("20b").status is SLEEPING
        assert manager.status("20b").hf_state == "paused"
