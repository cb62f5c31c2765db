"""The request history as the recorder writes it: finished requests counted per second of arrival,
endpoint and kind, with their tokens, into a real SQLite store; kept when a write fails."""

from __future__ import annotations

from pathlib import Path

from crazy_gary.clock import ManualClock
from crazy_gary.engine import RequestEvent
from crazy_gary.replay.stored import trace_of
from crazy_gary.replay.traces import TraceRequest
from crazy_gary.store import SqlStore, database_url
from crazy_gary.store.base import RequestRecord
from crazy_gary.usage.arrivals import MAX_KEPT, ArrivalLog
from crazy_gary.usage.tokens import TokenCount


def finished(model: str, duration: float, tokens: TokenCount | None, *, stream: bool = False) -> RequestEvent:
    served = None if tokens is None else model
    return RequestEvent(
        model, served, None, 200 if served else 503, stream, duration, None, 0, (), "chat", "bob", tokens
    )


def test_requests_are_counted_in_the_second_they_arrived_with_their_tokens() -> None:
    """Counted when they end, in the second they arrived; one nothing served arrived too; streams
    and other endpoints apart."""
    clock = ManualClock(start=1_000_000.5)
    log = ArrivalLog(clock)
    log.on_request(finished("120b", 2.0, TokenCount(12, 30), stream=True))
    log.on_request(finished("120b", 2.2, TokenCount(3, 4), stream=True))  # arrived 999,998.3
    log.on_request(finished("20b", 0.0, None))
    assert sorted(log.take(), key=lambda r: (r.at, r.model_type)) == [
        RequestRecord(999_998.0, "120b", 15, 34, True, 2),
        RequestRecord(1_000_000.0, "20b", 0, 0, False, 1),
    ]
    assert log.take() == []


def test_what_a_failed_write_gives_back_is_counted_again_and_the_log_stays_bounded() -> None:
    clock = ManualClock()
    log = ArrivalLog(clock)
    log.on_request(finished("120b", 0.0, TokenCount(1, 1)))
    taken = log.take()
    log.on_request(finished("120b", 0.0, TokenCount(1, 1)))
    log.put_back(taken)
    (record,) = log.take()
    assert (record.requests, record.prompt_tokens) == (2, 2)
    for seconds_ago in range(MAX_KEPT + 5):  # requests that arrived in as many different seconds
        log.on_request(finished("120b", float(seconds_ago), None))
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
        assert trace_of([RequestRecord(10.0, "120b", 30, 60, False, 3)]) == [
            TraceRequest(10.0 + index / 3, "120b", 10, 20) for index in range(3)
        ]
    finally:
        await store.close()
