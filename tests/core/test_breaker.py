"""The circuit breaker on the manual clock."""

from __future__ import annotations

from crazy_gary.clock import ManualClock
from crazy_gary.core.breaker import BreakerState, CircuitBreaker


async def test_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    """Five failures in a row open it; after the cooldown one trial is let through at a time."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock, failures_to_open=5, cooldown=30)
    for _ in range(4):
        assert breaker.acquire()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.acquire()
    await clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()
    assert not breaker.acquire()  # only one trial in flight
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire()


async def test_failed_trial_opens_again() -> None:
    """A failing trial request re-opens the circuit for another cooldown."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock, failures_to_open=1, cooldown=10)
    breaker.acquire()
    breaker.record_failure()
    await clock.advance(10)
    assert breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    await clock.advance(9)
    assert not breaker.allows()


async def test_failure_ratio_opens() -> None:
    """Half of the last calls failing opens it even without five in a row."""
    breaker = CircuitBreaker(ManualClock(), failures_to_open=5, window=10, min_calls_for_ratio=10)
    for index in range(10):
        breaker.acquire()
        if index % 2:
            breaker.record_failure()
        else:
            breaker.record_success()
    assert breaker.state is BreakerState.OPEN


async def test_released_trial_frees_the_slot() -> None:
    """A trial that ended without an outcome (cancelled) lets the next one through."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock, failures_to_open=1, cooldown=1)
    breaker.acquire()
    breaker.record_failure()
    await clock.advance(1)
    assert breaker.acquire()
    breaker.release()
    assert breaker.acquire()


async def test_an_opening_through_another_replica_opens_for_what_remains_of_its_cooldown() -> None:
    """A circuit another replica opened 10 s ago is open here for the 20 s left of its cooldown; an
    older opening, or one whose cooldown is over, changes nothing."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock, cooldown=30)
    assert not breaker.open_since(clock.now() - 31)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.open_since(clock.now() - 10)
    assert breaker.state is BreakerState.OPEN and not breaker.acquire()
    assert not breaker.open_since(clock.now() - 12)  # older than the one taken
    await clock.advance(19)
    assert breaker.state is BreakerState.OPEN
    await clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()
    breaker.record_failure()  # its own trial failed: open again, from now
    assert breaker.opened_wall == clock.now()


async def test_on_open_is_told_once_per_outage_of_its_own() -> None:
    """`on_open` is called when failures open a closed circuit; a failed trial that keeps it open,
    a late failure, and an opening learnt from another replica do not call it again."""
    clock = ManualClock()
    opened: list[float] = []
    breaker = CircuitBreaker(
        clock, failures_to_open=2, cooldown=10, on_open=lambda: opened.append(clock.now())
    )
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    breaker.record_failure()  # a request that began before the opening
    assert breaker.state is BreakerState.OPEN and len(opened) == 1
    await clock.advance(10)
    assert breaker.acquire()
    breaker.record_failure()  # the trial failed: still the same outage
    assert breaker.state is BreakerState.OPEN and len(opened) == 1
    await clock.advance(10)
    assert breaker.acquire()
    breaker.record_success()
    assert breaker.open_since(clock.now())  # another replica's opening
    assert len(opened) == 1
    await clock.advance(10)
    breaker.acquire()
    breaker.record_success()
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    assert opened == [clock.now() - 30, clock.now()]
