"""The usage to write: each finished request's tokens by key, endpoint and UTC hour, and each
endpoint's busy seconds (time with at least one of this replica's requests in flight there, from
its sending to its end: a hold for a cold start is not busy), gathered between two writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crazy_gary.clock import Clock
from crazy_gary.store.base import UsageRow

if TYPE_CHECKING:
    from crazy_gary.engine import RequestEvent

__all__ = ["IN_PROCESS", "UsageLedger"]

HOUR = 3600
IN_PROCESS = "harmony-client"  # whom a request without a key (HarmonyClient's) is counted for
MAX_ROWS = 100_000  # rows kept while the store is down; the oldest go first


class UsageLedger:
    """Sums the requests of the engine (`on_request`) and the endpoints' busy time (`add_busy`)
    until `take()` hands them to the store."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._counts: dict[tuple[int, str, str], list[float]] = {}  # requests, prompt, completion, busy

    def on_request(self, event: RequestEvent) -> None:
        """Count a finished request for whom it was sent by, on the endpoint that served it (on
        every request: a dict lookup and three additions)."""
        if event.served_by is None:
            return
        counts = self._place(event.caller or IN_PROCESS, event.served_by)
        counts[0] += 1
        tokens = event.tokens
        if tokens is not None:
            counts[1] += tokens.prompt
            counts[2] += tokens.completion

    def add_busy(self, endpoint: str, seconds: float) -> None:
        """`seconds` more with a request in flight on `endpoint`."""
        self._place("", endpoint)[3] += seconds

    def _place(self, key: str, endpoint: str) -> list[float]:
        place = (int(self._clock.now() // HOUR * HOUR), key, endpoint)
        counts = self._counts.get(place)
        if counts is None:
            if len(self._counts) >= MAX_ROWS:
                del self._counts[next(iter(self._counts))]
            counts = self._counts[place] = [0, 0, 0, 0.0]
        return counts

    def take(self) -> list[UsageRow]:
        """The rows gathered since the last take, gone from here."""
        counts, self._counts = self._counts, {}
        return [
            UsageRow(hour, key, endpoint, int(c[0]), int(c[1]), int(c[2]), c[3])
            for (hour, key, endpoint), c in counts.items()
        ]

    def put_back(self, rows: list[UsageRow]) -> None:
        """Rows a write failed to store, to be written with the next ones (in their own hours)."""
        for row in rows:
            counts = self._counts.setdefault((row.hour, row.key, row.model_type), [0, 0, 0, 0.0])
            counts[0] += row.requests
            counts[1] += row.prompt_tokens
            counts[2] += row.completion_tokens
            counts[3] += row.busy_seconds
