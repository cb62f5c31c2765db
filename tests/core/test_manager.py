"""HuggingFaceEndpointManager on the manual clock: wake, sleep, auto-sleep, polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import Alone, Presence
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus
from crazy_gary.errors import EndpointNotFound

from .fakes import FakeManagement

RUNNING, SLEEPING, STARTING, ERROR, UNKNOWN = (
    EndpointStatus.RUNNING,
    EndpointStatus.SLEEPING,
    EndpointStatus.STARTING,
    EndpointStatus.ERROR,
    EndpointStatus.UNKNOWN,
)

SPECS = [
    EndpointSpec(key="120b", url="demo/gpt-oss-120b", namespace="demo", name="gpt-oss-120b", fallback="20b"),
    EndpointSpec(key="20b", url="demo/gpt-oss-20b", namespace="demo", name="gpt-oss-20b"),
]


@pytest.fixture
def hf(clock: ManualClock) -> FakeManagement:
    return FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "paused"})


@pytest.fixture
async def manager(clock: ManualClock, hf: FakeManagement) -> AsyncIterator[HuggingFaceEndpointManager]:
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, wake_timeout=300, auto_sleep=900, poll_interval=10, poll_fast_interval=1
    ) as manager:
        await clock.settle()
        yield manager


async def test_first_poll_reads_every_endpoint(manager: HuggingFaceEndpointManager) -> None:
    """After start-up every endpoint has been read once and shows HF's state."""
    assert manager.ready
    assert manager.status("120b").status is SLEEPING
    assert manager.status("20b").hf_state == "paused"


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


async def test_auto_sleep_after_idle_period_with_reads(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """A woken, unused endpoint sleeps 900 s after it began running; status reads do not count."""
    manager.wake("120b")
    await clock.advance(20)
    assert manager.status("120b").status is RUNNING
    for _ in range(89):
        await clock.advance(10)
        assert manager.status("120b").status is RUNNING  # reading is not activity
    await clock.advance(15)
    assert hf.calls["scale-to-zero"] == 1
    view = manager.status("120b")
    assert view.status is SLEEPING
    assert view.sleep_time is not None


async def test_activity_resets_the_countdown(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Inference activity pushes auto-sleep to 900 s after the last request."""
    manager.wake("120b")
    await clock.advance(20)
    await clock.advance(800)
    async with manager.lease("120b"):
        pass  # a request started and ended
    await clock.advance(800)
    assert manager.status("120b").status is RUNNING
    assert manager.status("120b").auto_sleep_in == pytest.approx(100, abs=1)
    await clock.advance(101)
    assert manager.status("120b").status is SLEEPING
    assert hf.calls["scale-to-zero"] == 1


async def test_no_auto_sleep_while_in_flight(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """An endpoint with a request in flight is never put to sleep; the countdown restarts at its end."""
    manager.wake("120b")
    await clock.advance(20)
    release = asyncio.Event()

    async def long_request() -> None:
        async with manager.lease("120b"):
            await release.wait()

    request = asyncio.create_task(long_request())
    await clock.advance(2000)
    assert manager.status("120b").in_flight == 1
    assert hf.calls["scale-to-zero"] == 0
    release.set()
    await request
    await clock.advance(899)
    assert manager.status("120b").status is RUNNING
    await clock.advance(2)
    assert hf.calls["scale-to-zero"] == 1


async def test_pause_sleep_mode(clock: ManualClock, hf: FakeManagement) -> None:
    """With ENDPOINT_SLEEP_MODE=pause, sleep pauses the endpoint."""
    hf.records["gpt-oss-120b"].state = "running"
    async with HuggingFaceEndpointManager(SPECS, hf, clock, sleep_mode="pause") as manager:
        await clock.settle()
        result = manager.sleep("120b")
        assert result.started
        await clock.settle()
        assert hf.calls["pause"] == 1
        assert manager.status("120b").status is SLEEPING
        assert manager.status("120b").hf_state == "paused"


async def test_sleep_of_sleeping_endpoint_changes_nothing(
    manager: HuggingFaceEndpointManager, clock: ManualClock, hf: FakeManagement
) -> None:
    """Sleep of an endpoint already asleep answers its state and calls nothing."""
    result = manager.sleep("120b")
    assert not result.started and result.status is SLEEPING
    await clock.settle()
    assert hf.calls["scale-to-zero"] == 0


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
