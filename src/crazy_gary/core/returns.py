"""Returns an endpoint's own history predicts, for adaptive auto-sleep to wake it ahead of them
(README, "Adaptive auto-sleep").

A return is a request after a pause longer than the longest idle time allowed (`auto_sleep_max`):
whatever the idle time, the endpoint was asleep when it came. Its burst is the requests that came
within a cold start of it: those a wake ahead saves from waiting. A return is predicted at a time of
day when, on at least two of the last days of the same kind (working day or weekend, UTC) and on two
thirds of them, a return came within `WINDOW / 2` of that time. A wake for it is worth it when what
its burst would have waited outweighs what a wake in vain bills, each weighted by how often the
return came:

    likely * (burst * cold start - (LEAD + WINDOW / 2)) > (1 - likely) * (cold start + LEAD + WINDOW + minimum)

(a wake that meets its return bills only the time it is up early, since the cold start is billed
either way; one in vain bills the cold start, the whole window and the shortest idle time after it).
A nightly batch job at a fixed time is predicted; the scattered first requests of a working day
mostly are not (their bursts are small and their times spread).
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass, field

__all__ = ["LEAD", "WINDOW", "PlannedWake", "ReturnHistory"]

DAY = 86400.0
WINDOW = 900.0  # seconds: a return is predicted within a window this wide, and kept up through it
LEAD = 60.0  # seconds running before the window begins, beyond the cold start
_LIKELY = 2 / 3  # share of the days of the same kind a return must have come on
_DAYS = 7  # days of the same kind looked at, at most
_KEPT = 3 * _DAYS + 1  # days of returns kept: as far back as days of the same kind are looked for
_BURST_SPAN = 1800.0  # seconds after a return whose requests count to its burst, at most
_BURST_KEPT = 256  # offsets of a burst kept, at most


@dataclass(frozen=True)
class PlannedWake:
    """A predicted return: wake at `wake_at` so that the endpoint runs from `window[0]`, and keep it up
    until `window[1]` (wall times)."""

    wake_at: float
    window: tuple[float, float]


@dataclass
class _Return:
    at: float
    offsets: array[float] = field(default_factory=lambda: array("f"))  # its burst's, seconds after it


class ReturnHistory:
    """The returns of one endpoint over its last `_KEPT` days, with their bursts."""

    def __init__(self, minimum_idle: float) -> None:
        self._minimum_idle = minimum_idle
        self._returns: list[_Return] = []  # in order of time
        self._times: list[float] = []  # their times, for bisect
        self._since: float | None = None  # wall time of the first request seen

    def observe_arrival(self, at: float, returned: bool, count: int = 1) -> None:
        """`count` requests arrived at wall time `at` (within its second); `returned` when a pause
        longer than any idle time allowed came before them."""
        if self._since is None:  # the first request seen: nothing is known to have come before it
            self._since, returned = at, True
        if returned:
            self._returns.append(_Return(at))
            self._times.append(at)
            count -= 1  # the others of its second are of its burst
            if self._times[0] < at - (_KEPT + 1) * DAY:  # a day's worth at a time, not at each
                first = bisect.bisect_left(self._times, at - _KEPT * DAY)
                del self._returns[:first], self._times[:first]
        if self._returns and count > 0:
            last = self._returns[-1]
            offset = at - last.at
            room = _BURST_KEPT - len(last.offsets)
            if offset <= _BURST_SPAN and room > 0:
                last.offsets.extend([offset] * min(count, room))

    def next_wake(self, now: float, cold_start: float, after: float | None = None) -> PlannedWake | None:
        """The wake worth making whose window ends first after `now` (and after `after`, the end of
        the last window acted on), over the next day; None when there is none. Its `wake_at` may be
        past: a window that has begun is still worth waking for."""
        ahead = cold_start + LEAD + WINDOW / 2  # from a wake to the middle of its window
        floor = now if after is None else max(now, after)  # a window must end after it
        best: PlannedWake | None = None
        looked: list[float] = []  # the middles looked at: returns of other days project onto them
        recent = bisect.bisect_left(self._times, now - _DAYS * DAY)  # a pattern shows in a week
        for past in self._returns[recent:]:
            middle = past.at + DAY * max(1, math.ceil((floor - WINDOW / 2 - past.at) / DAY))
            if middle + WINDOW / 2 <= floor:
                middle += DAY
            if best is not None and middle >= best.window[0] + WINDOW / 2:
                continue
            if any(abs(middle - seen) < WINDOW / 4 for seen in looked):
                continue
            looked.append(middle)
            if self._worth_a_wake(middle, cold_start):
                best = PlannedWake(middle - ahead, (middle - WINDOW / 2, middle + WINDOW / 2))
        return best

    def _worth_a_wake(self, middle: float, cold_start: float) -> bool:
        """Whether a return near wall time `middle` is likely enough, with a burst big enough."""
        days = hits = 0
        burst = 0.0
        weekend = _is_weekend(middle)
        for back in range(1, 3 * _DAYS + 1):
            day_middle = middle - back * DAY
            if self._since is None or day_middle + WINDOW / 2 < self._since or days == _DAYS:
                break
            if _is_weekend(day_middle) != weekend:
                continue
            days += 1
            came = self._return_near(day_middle)
            if came is not None:
                hits += 1
                burst += 1 + sum(1 for offset in came.offsets if offset < cold_start)
        if days < 2 or hits < _LIKELY * days:
            return False
        likely, burst = hits / days, burst / hits
        saved = likely * (burst * cold_start - (LEAD + WINDOW / 2))
        in_vain = (1 - likely) * (cold_start + LEAD + WINDOW + self._minimum_idle)
        return saved > in_vain

    def _return_near(self, middle: float) -> _Return | None:
        first = bisect.bisect_left(self._times, middle - WINDOW / 2)
        if first < len(self._times) and self._times[first] <= middle + WINDOW / 2:
            return self._returns[first]
        return None


def _is_weekend(at: float) -> bool:
    """Saturday or Sunday, UTC (1970-01-01 was a Thursday)."""
    return (int(at // DAY) + 3) % 7 >= 5
