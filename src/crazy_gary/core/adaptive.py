"""Adaptive auto-sleep: the idle time learnt from the endpoint's own idle gaps, and wakes ahead of
the returns its history predicts (README, "Adaptive auto-sleep"; the wakes: `crazy_gary.core.returns`).

Every gap between one request's end and the next request's start that is longer than the shortest
idle time allowed is kept, by the hour of the week it began in (as Azure Functions' "hybrid
histogram" policy keeps its idle times). Shorter gaps are only counted: every allowed idle time
stays up through them, so they cannot change the choice, and keeping them would push the long ones
out of a busy hour's history. For a gap that begins now, the idle time is the one that would have
cost least over the gaps seen at this hour: staying up through a gap bills it whole; sleeping
before its end bills the idle time and a cold start, and makes a request wait, which counts as
`WAIT_WEIGHT` cold starts more. An idle time that stays up through every gap seen keeps a margin:
twice the longest (the longest of a few gaps says little of the next one's length). An hour with
few gaps, or fewer than three long ones, borrows those of the same hour of the other days, then of
the hours around it, then of the hours around it on every day, then of all hours; a history without
a single long gap sleeps as soon as it may; and until the endpoint has some history, the fixed timer
applies. The result stays within `auto_sleep_min` and `auto_sleep_max`.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from crazy_gary.core.returns import ReturnHistory

__all__ = ["AdaptiveIdle", "AdaptiveSettings"]

_HOURS = 7 * 24
_PER_HOUR = 200  # gaps kept of each hour of the week: the latest
_ENOUGH = 12  # gaps an hour (with its neighbours) needs before it decides alone
_ENOUGH_LONG = 3  # long ones among them
_WIDE = 6  # hours on each side of the widest look, on every day
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
    """The idle gaps of one endpoint (the latest `_PER_HOUR` of each hour of the week that outlast
    the shortest idle time) and the idle time they call for, worked out again as gaps come in (not
    at each one: it moves slowly)."""

    def __init__(self, settings: AdaptiveSettings) -> None:
        self.settings = settings
        self._by_hour: dict[int, deque[float]] = {}
        self._counts: dict[int, int] = {}  # gaps of each hour of the week, the short ones too
        self._seen = 0
        self._cache: dict[tuple[int, int], tuple[int, float]] = {}  # (hour, cold start) -> (seen, idle)
        self.returns = ReturnHistory(settings.minimum)  # to wake it ahead of a predicted return

    def observe_gap(self, began: float, seconds: float) -> None:
        """A gap of `seconds` without requests that began at wall time `began` ended."""
        if seconds <= 0:
            return
        self._seen += 1
        hour = _hour_of_week(began)
        self._counts[hour] = self._counts.get(hour, 0) + 1
        if seconds > self.settings.minimum:
            self._by_hour.setdefault(hour, deque(maxlen=_PER_HOUR)).append(seconds)
            self._cache.clear()  # a pause is news: worked out again at once, not after many gaps

    def observe_arrival(self, at: float, idle_since: float | None) -> None:
        """A request arrived at wall time `at`, after idleness since `idle_since` (None: requests
        were in flight): the gap, and whether it is a return (a pause longer than the longest idle
        time allowed)."""
        if idle_since is not None:
            self.observe_gap(idle_since, at - idle_since)
        returned = idle_since is not None and at - idle_since > self.settings.maximum
        self.returns.observe_arrival(at, returned)

    def observe_return_elsewhere(self, at: float, idle_since: float | None) -> None:
        """Another replica had activity at `at`: a return when it ends a pause longer than the
        longest idle time allowed (its gap and burst are that replica's to learn)."""
        if idle_since is not None and at - idle_since > self.settings.maximum:
            self.returns.observe_arrival(at, returned=True)

    def learn_history(self, arrivals: list[tuple[float, int]]) -> None:
        """Requests from before a restart (the store's request history: the start of each second
        and how many arrived in it), oldest first: what would have been learnt from them live."""
        last: float | None = None
        for at, count in arrivals:
            if last is not None and at > last:
                self.observe_gap(last, at - last)
            self.observe_short_gaps(at, count - 1)  # those within the second
            returned = last is not None and at - last > self.settings.maximum
            self.returns.observe_arrival(at, returned, count)
            last = at

    def observe_short_gaps(self, began: float, count: int) -> None:
        """`count` gaps shorter than a second, within the second that began at `began`."""
        if count > 0:
            self._seen += count
            hour = _hour_of_week(began)
            self._counts[hour] = self._counts.get(hour, 0) + count

    def idle_time(self, began: float, cold_start: float) -> float | None:
        """Seconds to stay up after activity at wall time `began`, for a cold start of `cold_start`
        s; None while the history is too short to say (the fixed timer applies)."""
        if self._seen < _MIN_HISTORY:
            return None
        key = (_hour_of_week(began), round(cold_start))
        cached = self._cache.get(key)
        if cached is None or self._seen - cached[0] >= max(8, self._seen // 16):
            near = self._gaps_near(key[0])
            idle = self._best(near, cold_start) if near is not None else -1.0
            cached = self._cache[key] = (self._seen, idle)
        return None if cached[1] < 0 else cached[1]

    def _gaps_near(self, hour: int) -> list[float] | None:
        """The long gaps of this hour of the week. With too few gaps, or too few long ones (a busy
        hour's first minutes tell nothing of its pauses): of this hour of every day, of the hours
        around it, of those hours of every day, of all hours. No long gap at all: none is expected
        ([]). None when even all the gaps are too few."""
        same_hour = [(hour % 24 + 24 * day) % _HOURS for day in range(7)]
        around = [(hour + offset) % _HOURS for offset in range(-_NEIGHBOURS, _NEIGHBOURS + 1)]
        wide = [
            (hour + offset + 24 * day) % _HOURS for offset in range(-_WIDE, _WIDE + 1) for day in range(7)
        ]
        for hours in ([hour], same_hour, around, wide, list(self._counts)):
            counted = sum(self._counts.get(each, 0) for each in hours)
            long = [gap for each in hours for gap in self._by_hour.get(each, ())]
            if counted >= _ENOUGH and len(long) >= _ENOUGH_LONG:
                return long
        return [] if not self._by_hour else None

    def _best(self, gaps: list[float], cold_start: float) -> float:
        """The idle time within the bounds that bills least over the long gaps `gaps`, a waiting
        request counted."""
        low, high = self.settings.minimum, self.settings.maximum
        if not gaps:
            return low  # every gap at this hour ended before the shortest idle time could
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
        if best >= ordered[-1]:
            # It stays up through every gap seen: a sleep in a gap longer than any seen would make
            # the next request wait, so it keeps a margin as wide again (else each new longest gap
            # would catch it asleep; the longest of a few gaps understates the next).
            best = min(high, max(best, 2 * ordered[-1]))
        return best


def _hour_of_week(at: float) -> int:
    """0 for Monday 00:00-01:00 UTC (1970-01-01 was a Thursday)."""
    return int((at // 3600 + 3 * 24) % _HOURS)
