"""Adaptive auto-sleep: the idle time before sleep learnt from the endpoint's own idle gaps
(README, "Adaptive auto-sleep").

Every gap between one request's end and the next request's start is kept, by the hour of the week
it began in (as Azure Functions' "hybrid histogram" policy keeps its idle times). For a gap that
begins now, the idle time is the one that would have cost least over the gaps seen at this hour:
staying up through a gap bills it whole, sleeping before its end bills the idle time and a cold
start, and makes a request wait, which counts as `WAIT_WEIGHT` cold starts more. An hour with
few gaps borrows those of the same hour of the other days, then of the hours around it; where even
those are too few, and until the endpoint has some history, the fixed timer applies. The result stays within `auto_sleep_min` and `auto_sleep_max`.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

__all__ = ["AdaptiveIdle", "AdaptiveSettings"]

_HOURS = 7 * 24
_PER_HOUR = 200  # gaps kept of each hour of the week: the latest
_ENOUGH = 12  # gaps an hour (with its neighbours) needs before it decides alone
_MIN_HISTORY = 30  # gaps in all before the fixed timer gives way
WAIT_WEIGHT = 3.0  # a request that meets a cold start costs this many cold starts more
_PAST_A_GAP = 10.0  # seconds an idle time that covers a gap stays past its end
_NEIGHBOURS = 2  # hours on each side an hour with few gaps borrows from


@dataclass(frozen=True)
class AdaptiveSettings:
    """`auto_sleep = "adaptive"` of an endpoint: the bounds of its idle time, in seconds."""

    minimum: float = 60.0
    maximum: float = 3600.0


class AdaptiveIdle:
    """The idle gaps of one endpoint (the latest `_PER_HOUR` of each hour of the week) and the idle
    time they call for, worked out again as gaps come in (not at each one: it moves slowly)."""

    def __init__(self, settings: AdaptiveSettings) -> None:
        self.settings = settings
        self._by_hour: dict[int, deque[float]] = {}
        self._seen = 0
        self._cache: dict[tuple[int, int], tuple[int, float]] = {}  # (hour, cold start) -> (seen, idle)

    def observe_gap(self, began: float, seconds: float) -> None:
        """A gap of `seconds` without requests that began at wall time `began` ended."""
        if seconds > 0:
            self._by_hour.setdefault(_hour_of_week(began), deque(maxlen=_PER_HOUR)).append(seconds)
            self._seen += 1

    def idle_time(self, began: float, cold_start: float) -> float | None:
        """Seconds to stay up after activity at wall time `began`, for a cold start of `cold_start`
        s; None while the history is too short to say (the fixed timer applies)."""
        if self._seen < _MIN_HISTORY:
            return None
        key = (_hour_of_week(began), round(cold_start))
        cached = self._cache.get(key)
        if cached is None or self._seen - cached[0] >= max(8, self._seen // 16):
            gaps = self._gaps_near(key[0])
            cached = self._cache[key] = (self._seen, self._best(gaps, cold_start) if gaps else -1.0)
        return None if cached[1] < 0 else cached[1]

    def _gaps_near(self, hour: int) -> list[float]:
        """The gaps of this hour of the week; with too few, of this hour of every day, then of the
        hours around it; none when even those are too few."""
        same_hour = [(hour % 24 + 24 * day) % _HOURS for day in range(7)]
        around = [(hour + offset) % _HOURS for offset in range(-_NEIGHBOURS, _NEIGHBOURS + 1)]
        for hours in ([hour], same_hour, around):
            near = [gap for each in hours for gap in self._by_hour.get(each, ())]
            if len(near) >= _ENOUGH:
                return near
        return []

    def _best(self, gaps: list[float], cold_start: float) -> float:
        """The idle time within the bounds that bills least over `gaps`, a waiting request counted."""
        low, high = self.settings.minimum, self.settings.maximum
        ordered = sorted(gaps)
        prefix = [0.0]
        for gap in ordered:
            prefix.append(prefix[-1] + gap)
        penalty = cold_start * (1 + WAIT_WEIGHT)
        # just past each gap: staying up exactly as long as a gap lasted would sleep as it ends
        candidates = {low, high, *(gap + _PAST_A_GAP for gap in ordered if low <= gap + _PAST_A_GAP <= high)}
        best, best_cost = high, float("inf")
        for idle in sorted(candidates):
            shorter = bisect.bisect_right(ordered, idle)  # gaps that end before the idle time does
            longer = len(ordered) - shorter
            cost = prefix[shorter] + longer * (idle + penalty)
            if cost < best_cost:
                best, best_cost = idle, cost
        return best


def _hour_of_week(at: float) -> int:
    """0 for Monday 00:00-01:00 UTC (1970-01-01 was a Thursday)."""
    return int((at // 3600 + 3 * 24) % _HOURS)
