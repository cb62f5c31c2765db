"""The request history as the recorder writes it: each finished request's arrival, endpoint and
tokens, into a real SQLite store, kept when a write fails."""

from __future__ import annotations

from pathlib import Path

from crazy_gary.clock import ManualClock
from crazy_gary.engine import RequestEvent
from crazy_gary.store import SqlStore, database_url
from crazy_gary.store.base import RequestRecord
from crazy_gary.usage.arrivals import MAX_KEPT, ArrivalLog
from crazy_gary.usage.tokens import TokenCount


def finished(model: str, duration: float, tokens: TokenCount | None, *, stream: bool = False) -> RequestEvent:
    served = None if tokens is None else model
    return RequestEvent(
        model, served, None, 200 if served else 503, stream, duration, None, 0, (), "chat", "bob", tokens
    )


def test_a_request_is_noted_at_its_arrival_with_its_tokens() -> None:
    """Noted when it ends, at the time it arrived; one nothing served is an arrival too."""
    clock = ManualClock(start=1_000_000.0)
    log = ArrivalLog(clock)
    log.on_request(finished("120b", 2.5, TokenCount(12, 30), stream=True))
    log.on_request(finished("20b", 0.0, None))
    assert log.take() == [
        RequestRecord(1_000_000.0 - 2.5, "120b", 12, 30, True),
        RequestRecord(1_000_000.0, "20b", 0, 0, False),
    ]
    assert log.take() == []


def test_what_a_failed_write_gives_back_goes_first_and_the_log_stays_bounded() -> None:
    clock = ManualClock()
    log = ArrivalLog(clock)
    log.on_request(finished("120b", 0.0, None))
    taken = log.take()
    log.on_request(finished("20b", 0.0, None))
    log.put_back(taken)
    assert [record.model_type for record in log.take()] == ["120b", "20b"]
    for _ in range(MAX_KEPT + 5):
        log.on_request(finished("120b", 0.0, None))
    assert len(log) == MAX_KEPT


async def test_requests_written_by_the_store_come_back_for_a_period(tmp_path: Path) -> None:
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    try:
        clock = ManualClock(start=5_000.0)
        log = ArrivalLog(clock)
        for _ in range(3):
            log.on_request(finished("120b", 1.0, TokenCount(1, 2)))
            await clock.advance(60)
        await store.add_requests(log.take())
        assert [r.at for r in await store.requests(5_000.0, 5_200.0)] == [5_059.0, 5_119.0]
        assert len(await store.requests(4_999.0, 5_119.0)) == 2  # from `since` on, before `until`
    finally:
        await store.close()
