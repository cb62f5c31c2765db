"""HuggingFaceEndpointManager on the manual clock beside other replicas: wakes, activity, leadership."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import Alone, Presence

from ._specs import RUNNING, SPECS, STARTING
from .fakes import FakeManagement


class _OtherReplicaAsked(Alone):
    """Coordination where another replica has just claimed every wake."""

    def __init__(self) -> None:
        self.claims: list[str] = []

    async def claim_wake(self, key: str) -> bool:
        self.claims.append(key)
        return False


async def test_a_wake_another_replica_claimed_is_not_asked_again(
    clock: ManualClock, hf: FakeManagement
) -> None:
    """When another replica claimed the wake, this one does not ask HF: it reads the state again
    shortly, sees the endpoint starting (the other replica's request) and runs when it runs."""
    coordination = _OtherReplicaAsked()
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, poll_interval=10, poll_fast_interval=1, coordination=coordination
    ) as manager:
        await clock.settle()
        manager.wake("20b")
        await clock.settle()
        assert coordination.claims == ["20b"]
        assert hf.calls["resume"] == 0 and hf.calls["poke"] == 0
        await clock.advance(1)
        assert len(coordination.claims) == 2  # still paused: asks for the claim again
        hf.records["gpt-oss-20b"].state = "initializing"  # the other replica's resume took effect
        hf.records["gpt-oss-20b"].started_at = clock.now()
        await clock.advance(1)
        assert manager.status("20b").status is STARTING
        await clock.advance(21)
        assert manager.status("20b").status is RUNNING
        assert hf.calls["resume"] == 0 and hf.calls["poke"] == 0
        assert len(coordination.claims) == 2


class _Others(Alone):
    """Coordination with other replicas, scripted: who leads, and what the others report."""

    def __init__(self) -> None:
        self.leading = True
        self.others: dict[str, Presence] = {}
        self.told: list[dict[str, Presence]] = []

    async def lead(self) -> bool:
        return self.leading

    async def share(self, ours: Mapping[str, Presence]) -> Mapping[str, Presence]:
        self.told.append(dict(ours))
        together = {}
        for key, mine in ours.items():
            theirs = self.others.get(key, Presence(None, 0))
            newest = max(
                (t for t in (mine.last_activity, theirs.last_activity) if t is not None), default=None
            )
            together[key] = Presence(newest, mine.in_flight + theirs.in_flight)
        return together


@pytest.fixture
async def replica(
    clock: ManualClock, hf: FakeManagement
) -> AsyncIterator[tuple[HuggingFaceEndpointManager, _Others]]:
    others = _Others()
    hf.records["gpt-oss-20b"].state = "running"
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, auto_sleep=900, poll_interval=10, poll_fast_interval=1, coordination=others
    ) as manager:
        await clock.settle()
        yield manager, others


async def test_activity_through_another_replica_counts_here(
    replica: tuple[HuggingFaceEndpointManager, _Others], clock: ManualClock, hf: FakeManagement
) -> None:
    """Activity another replica reports resets this replica's countdown within a second; this
    replica's own activity is told to the others."""
    manager, others = replica
    await clock.advance(600)
    others.others["20b"] = Presence(clock.now(), 0)
    await clock.advance(1)
    assert manager.status("20b").last_activity == clock.now() - 1
    await clock.advance(898)
    assert manager.status("20b").status is RUNNING  # not asleep: the other replica's activity counted
    await clock.advance(2)
    assert hf.calls["scale-to-zero"] == 1
    async with manager.lease("120b"):
        pass
    await clock.advance(1)
    assert others.told[-1]["120b"].last_activity is not None


async def test_requests_in_flight_elsewhere_keep_an_endpoint_awake(
    replica: tuple[HuggingFaceEndpointManager, _Others], clock: ManualClock, hf: FakeManagement
) -> None:
    """An idle endpoint with a request in flight through another replica is not put to sleep; its
    status counts that request; it sleeps once the other replica's request ended."""
    manager, others = replica
    others.others["20b"] = Presence(None, 1)
    await clock.advance(901)
    assert hf.calls["scale-to-zero"] == 0
    assert manager.status("20b").in_flight == 1
    others.others["20b"] = Presence(None, 0)
    await clock.advance(1)
    assert hf.calls["scale-to-zero"] == 1


async def test_only_the_leader_puts_endpoints_to_sleep(
    replica: tuple[HuggingFaceEndpointManager, _Others], clock: ManualClock, hf: FakeManagement
) -> None:
    """A replica that does not lead leaves auto-sleep to the leader; when it takes over the lease it
    puts the idle endpoint to sleep within a second."""
    manager, others = replica
    others.leading = False
    await clock.advance(1)
    await clock.advance(1000)
    assert hf.calls["scale-to-zero"] == 0
    assert manager.status("20b").status is RUNNING
    others.leading = True
    await clock.advance(1)
    assert hf.calls["scale-to-zero"] == 1
