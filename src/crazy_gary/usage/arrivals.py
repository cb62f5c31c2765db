"""The requests to write to the store's request history, gathered between two writes: per second of
arrival, endpoint asked for and kind (streamed or not), how many arrived and their tokens. That is
what a replay of the endpoints' own traffic reads back (`crazy-gary replay --from-store`,
`GET /api/endpoints/policies`): an auto-sleep policy cannot tell requests a fraction of a second
apart, and at a thousand requests a second a row each would cost the gateway a tenth of its CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crazy_gary.clock import Clock
from crazy_gary.store.base import RequestRecord

if TYPE_CHECKING:
    from crazy_gary.engine import RequestEvent

__all__ = ["ArrivalLog"]

MAX_KEPT = 100_000  # seconds of arrivals kept while the store is down; the oldest go first


class ArrivalLog:
    """Counts the engine's finished requests (`on_request`) until `take()` hands them to the store."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._counts: dict[tuple[int, str, bool], list[int]] = {}  # requests, prompt, completion

    def __len__(self) -> int:
        return len(self._counts)

    def on_request(self, event: RequestEvent) -> None:
        """Count a finished request (served or not: it arrived) in the second it arrived."""
        place = (int(self._clock.now() - event.duration), event.model, event.stream)
        counts = self._counts.get(place)
        if counts is None:
            if len(self._counts) >= MAX_KEPT:
                del self._counts[next(iter(self._counts))]
            counts = self._counts[place] = [0, 0, 0]
        counts[0] += 1
        tokens = event.tokens
        if tokens is not None:
            counts[1] += tokens.prompt
            counts[2] += tokens.completion

    def take(self) -> list[RequestRecord]:
        """The seconds gathered since the last take, gone from here."""
        counts, self._counts = self._counts, {}
        return [
            RequestRecord(float(at), model, c[1], c[2], stream, c[0])
            for (at, model, stream), c in counts.items()
        ]

    def put_back(self, records: list[RequestRecord]) -> None:
        """Seconds a write failed to store, to go with the next ones; past `MAX_KEPT` seconds in
        all, the oldest go."""
        for record in records:
            place = (int(record.at), record.model_type, record.stream)
            counts = self._counts.setdefault(place, [0, 0, 0])
            counts[0] += record.requests
            counts[1] += record.prompt_tokens
            counts[2] += record.completion_tokens
        if len(self._counts) > MAX_KEPT:
            newest = sorted(self._counts)[-MAX_KEPT:]
            self._counts = {place: self._counts[place] for place in newest}
