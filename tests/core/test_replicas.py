"""Two managers kept in step by ReplicaSync over one in-memory board, on the manual clock.

The board keeps Redis's rules (a lease that lapses, newest reading per namespace, latest opening per
circuit); `tests/store/test_redis.py` checks that Redis itself keeps them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.breaker import BreakerState
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import Presence, Reading
from crazy_gary.core.status import EndpointStatus

from ._specs import SPECS
from .fakes import FakeManagement

LEASE = 5.0


@dataclass
class Board:
    """What the replicas share, in memory."""

    clock: ManualClock
    leader: tuple[str, float] | None = None  # (replica, lease ends)
    presence: dict[str, dict[str, Presence]] = field(default_factory=dict)
    readings: dict[str, Reading] = field(default_factory=dict)
    circuits: dict[str, float] = field(default_factory=dict)
    seats: dict[str, Seat] = field(default_factory=dict)

    def seat(self, replica: str) -> Seat:
        self.seats[replica] = Seat(self, replica)
        return self.seats[replica]


@dataclass
class Seat:
    """One replica's `Coordination` on the board."""

    board: Board
    replica: str
    shares: int = 0  # exchanges of presence, one per pass of the replica's sync
    fail_next: Exception | None = None  # raised by the next exchange, once

    async def claim_wake(self, key: str) -> bool:
        return True

    async def lead(self) -> bool:
        board, now = self.board, self.board.clock.now()
        if board.leader is None or board.leader[1] <= now or board.leader[0] == self.replica:
            board.leader = (self.replica, now + LEASE)
        return board.leader[0] == self.replica

    async def share(self, ours: Mapping[str, Presence]) -> Mapping[str, Presence]:
        self.shares += 1
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.board.presence[self.replica] = dict(ours)
        together: dict[str, Presence] = {}
        for presences in self.board.presence.values():
            for key, presence in presences.items():
                known = together.get(key, Presence(None, 0))
                times = [t for t in (known.last_activity, presence.last_activity) if t is not None]
                together[key] = Presence(max(times, default=None), known.in_flight + presence.in_flight)
        return together

    async def share_readings(self, ours: Iterable[Reading]) -> list[Reading]:
        for reading in ours:
            known = self.board.readings.get(reading.namespace)
            if known is None or known.asked_at < reading.asked_at:
                self.board.readings[reading.namespace] = reading
        return list(self.board.readings.values())

    async def share_circuits(self, opened: Mapping[str, float]) -> Mapping[str, float]:
        for key, at in opened.items():
            self.board.circuits[key] = max(at, self.board.circuits.get(key, at))
        return dict(self.board.circuits)


@dataclass
class Pair:
    leader: HuggingFaceEndpointManager
    follower: HuggingFaceEndpointManager
    hf: FakeManagement
    clock: ManualClock
    board: Board


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "paused"})
    board = Board(clock)

    def manager(replica: str) -> HuggingFaceEndpointManager:
        return HuggingFaceEndpointManager(
            SPECS,
            hf,
            clock,
            auto_sleep=900,
            poll_interval=10,
            poll_fast_interval=1,
            coordination=board.seat(replica),
        )

    async with manager("a") as leader, manager("b") as follower:
        await clock.advance(1)
        assert leader.leading and not follower.leading
        yield Pair(leader, follower, hf, clock, board)


async def test_only_the_leader_reads_hugging_face_while_nothing_moves(pair: Pair) -> None:
    """Two idle replicas cost one list per slow interval, not two; the follower still sees a change
    within an interval and a second."""
    pair.hf.calls.clear()
    await pair.clock.advance(100)
    assert 9 <= pair.hf.calls["list"] <= 11
    pair.hf.records["gpt-oss-120b"].state = "scaledToZero"  # changed outside crazy-gary
    await pair.clock.advance(11)
    assert pair.follower.status("120b").status is EndpointStatus.SLEEPING
    assert pair.follower.status("120b").hf_state == "scaledToZero"


async def test_the_replica_sync_outlives_an_unexpected_error(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """An exchange that raises something unexpected is logged once with its traceback; the sync runs
    again after the backoff and the follower still follows a change at HF."""
    seat = pair.board.seats["b"]
    seat.fail_next = KeyError("presence")
    with caplog.at_level(logging.ERROR, logger="crazy_gary.supervisor"):
        await pair.clock.advance(2)
        shares = seat.shares
        await pair.clock.advance(5)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "replica-sync" in record.getMessage() and record.exc_info is not None
    assert seat.shares >= shares + 3  # running again
    pair.hf.records["gpt-oss-120b"].state = "scaledToZero"
    await pair.clock.advance(11)
    assert pair.follower.status("120b").status is EndpointStatus.SLEEPING


async def test_a_follower_reads_for_itself_while_its_own_wake_runs(pair: Pair) -> None:
    """A wake through the follower is followed by the follower's own quick readings; the leader sees
    the endpoint start and run from them within a few seconds."""
    pair.follower.wake("20b")
    # A reading reaches the leader through two exchanges a second apart, each of which may fall on the
    # same instant as the reading before it and go first: up to three seconds
    await pair.clock.advance(3.5)
    assert pair.hf.calls["resume"] == 1
    assert pair.leader.status("20b").status is EndpointStatus.STARTING  # the follower's reading, shared
    lists = pair.hf.calls["list"]
    await pair.clock.advance(20)
    assert pair.follower.status("20b").status is EndpointStatus.RUNNING
    assert pair.hf.calls["list"] - lists >= 15  # both read quickly while it starts
    await pair.clock.advance(2)
    assert pair.leader.status("20b").status is EndpointStatus.RUNNING
    pair.hf.calls.clear()
    await pair.clock.advance(50)
    assert pair.hf.calls["list"] <= 6  # steady again: the leader alone, slowly


async def test_when_the_leader_stops_another_replica_reads_for_all(pair: Pair) -> None:
    """A leader that is gone stops reading; within its lease another replica leads and reads HF."""
    await pair.leader.close()
    pair.hf.calls.clear()
    pair.hf.records["gpt-oss-120b"].state = "paused"
    await pair.clock.advance(LEASE + 1)
    assert pair.follower.leading
    assert pair.hf.calls["list"] >= 1
    assert pair.follower.status("120b").hf_state == "paused"


async def test_a_circuit_opened_through_one_replica_opens_on_all(pair: Pair) -> None:
    """Failures through the leader open its circuit; within a second the follower's is open too, for
    the rest of the same cooldown, and it announces the change to its observers."""
    events: list[ManagerEvent] = []
    pair.follower.subscribe(events.append)
    breaker = pair.leader.endpoint("120b").breaker
    for _ in range(breaker.failures_to_open):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    await pair.clock.advance(1)
    assert pair.follower.status("120b").circuit == "open"
    assert any(event.kind == "state" and event.key == "120b" for event in events)
    assert pair.follower.status("20b").circuit == "closed"
    await pair.clock.advance(breaker.cooldown - 1)
    assert pair.follower.status("120b").circuit == "half_open"
    assert pair.leader.status("120b").circuit == "half_open"


async def test_a_sleep_waits_for_requests_in_flight_through_other_replicas(pair: Pair) -> None:
    """A sleep asked through one replica drains the requests the others have in flight, as they
    last told, before it asks HF."""
    async with pair.follower.lease("120b"):
        await pair.clock.advance(2)  # one exchange of each replica, in either order
        assert pair.leader.status("120b").in_flight == 1
        pair.leader.sleep("120b")
        await pair.clock.advance(10)
        assert pair.hf.calls["scale-to-zero"] == 0
    await pair.clock.advance(2)
    assert pair.hf.calls["scale-to-zero"] == 1
