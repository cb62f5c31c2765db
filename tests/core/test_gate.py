"""The concurrency gate on the manual clock: slots handed over in order of arrival, never overtaken."""

from __future__ import annotations

import asyncio

from crazy_gary.clock import ManualClock
from crazy_gary.core.gate import ConcurrencyGate


async def test_a_slot_given_back_goes_to_the_earliest_arrival_not_to_a_newcomer(clock: ManualClock) -> None:
    """Queued by arrival rank; while someone waits, a newcomer is not admitted even with a slot free."""
    gate = ConcurrencyGate(1, clock)
    held = gate.take()
    assert held is not None and not gate.admits()
    granted: list[int] = []

    async def queue(order: int) -> None:
        with gate.place(order) as place:
            if await place.wait(60):
                place.take().release()
                granted.append(order)

    late, early = asyncio.ensure_future(queue(7)), asyncio.ensure_future(queue(3))
    await clock.settle()
    assert gate.queued == 2
    held.release()
    await clock.settle()
    await asyncio.gather(late, early)
    assert granted == [3, 7]
    assert (gate.active, gate.queued) == (0, 0)
    assert gate.admits()


async def test_a_place_left_after_its_slot_was_handed_over_passes_it_on(clock: ManualClock) -> None:
    """A request that got a slot and went elsewhere (or was cancelled) hands it to the next one."""
    gate = ConcurrencyGate(1, clock)
    held = gate.take()
    assert held is not None
    with gate.place(1) as first, gate.place(2) as second:
        held.release()
        assert first.granted and not second.granted
        first._leave()  # as leaving its block does
        assert second.granted
        assert await second.wait(0)
        second.take().release()
    assert (gate.active, gate.queued) == (0, 0)


async def test_a_wait_that_times_out_keeps_nothing_and_no_limit_counts_nothing(clock: ManualClock) -> None:
    """A place given up after its timeout leaves the queue; a gate without a limit hands out no slot."""
    gate = ConcurrencyGate(1, clock)
    assert gate.take() is not None
    with gate.place(1) as place:
        waiting = asyncio.ensure_future(place.wait(5))
        await clock.advance(5)
        assert await waiting is False
    assert gate.queued == 0 and gate.wait_estimate() is None
    unlimited = ConcurrencyGate(None, clock)
    assert unlimited.admits() and unlimited.take() is None and unlimited.active == 0
