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
    """Sums the requests of the engine (`on_request`) until `take()` hands them to the store."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._rows: dict[tuple[int, str, str], UsageRow] = {}
        self._busy: dict[str, _Covered] = {}

    def on_request(self, event: RequestEvent) -> None:
        """Count a finished request for whom it was sent by, on the endpoint that served it."""
        if event.served_by is None:
            return
        end = self._clock.now()
        hour = int(end // HOUR * HOUR)
        tokens = event.tokens
        self._add(
            UsageRow(
                hour,
                event.caller or IN_PROCESS,
                event.served_by,
                requests=1,
                prompt_tokens=tokens.prompt if tokens else 0,
                completion_tokens=tokens.completion if tokens else 0,
            )
        )
        busy = self._busy.setdefault(event.served_by, _Covered()).add(end - event.upstream, end)
        if busy > 0:
            self._add(UsageRow(hour, "", event.served_by, busy_seconds=busy))

    def _add(self, row: UsageRow) -> None:
        place = (row.hour, row.key, row.model_type)
        known = self._rows.get(place)
        if known is None:
            if len(self._rows) >= MAX_ROWS:
                del self._rows[next(iter(self._rows))]
            self._rows[place] = row
            return
        self._rows[place] = UsageRow(
            row.hour,
            row.key,
            row.model_type,
            known.requests + row.requests,
            known.prompt_tokens + row.prompt_tokens,
            known.completion_tokens + row.completion_tokens,
            known.busy_seconds + row.busy_seconds,
        )

    def take(self) -> list[UsageRow]:
        """The rows gathered since the last take, gone from here."""
        rows, self._rows = list(self._rows.values()), {}
        return rows

    def put_back(self, rows: list[UsageRow]) -> None:
        """Rows a write failed to store, to be written with the next ones."""
        for row in rows:
            self._add(row)


class _Covered:
    """The times an endpoint had a request in flight, as merged intervals of the last `KEEP` seconds:
    each request adds what of its own time no other covered."""

    KEEP = 3600.0

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []

    def add(self, start: float, end: float) -> float:
        """Cover [start, end]; the seconds of it that were not covered yet."""
        overlap = sum(max(0.0, min(end, e) - max(start, s)) for s, e in self._spans)
        merged: list[tuple[float, float]] = []
        for s, e in sorted([*self._spans, (start, end)]):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            elif e >= end - self.KEEP:
                merged.append((s, e))
        self._spans = merged
        return max(0.0, end - start - overlap)
