"""The requests to write to the store's request history: each finished request's arrival, the
endpoint it asked for and its tokens, gathered between two writes (what a replay of the endpoints'
own traffic reads back: `crazy-gary replay --from-store`, `GET /api/endpoints/policies`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crazy_gary.clock import Clock
from crazy_gary.store.base import RequestRecord

if TYPE_CHECKING:
    from crazy_gary.engine import RequestEvent

__all__ = ["ArrivalLog"]

MAX_KEPT = 100_000  # requests kept while the store is down; the oldest go first


class ArrivalLog:
    """Collects the engine's finished requests (`on_request`) until `take()` hands them to the store."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._records: list[RequestRecord] = []

    def __len__(self) -> int:
        return len(self._records)

    def on_request(self, event: RequestEvent) -> None:
        """Note a finished request (served or not: it arrived) at the time it arrived."""
        tokens = event.tokens
        self._records.append(
            RequestRecord(
                self._clock.now() - event.duration,
                event.model,
                tokens.prompt if tokens is not None else 0,
                tokens.completion if tokens is not None else 0,
                event.stream,
            )
        )
        if len(self._records) > MAX_KEPT:
            del self._records[: len(self._records) - MAX_KEPT]

    def take(self) -> list[RequestRecord]:
        """The requests gathered since the last take, gone from here."""
        records, self._records = self._records, []
        return records

    def put_back(self, records: list[RequestRecord]) -> None:
        """Requests a write failed to store, to go with the next ones (oldest kept first)."""
        self._records[:0] = records
        if len(self._records) > MAX_KEPT:
            del self._records[: len(self._records) - MAX_KEPT]
