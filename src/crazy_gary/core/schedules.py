"""Warm-up schedules: windows of the week in which an endpoint is kept awake (README, "Schedules").

A window is `DAYS HH:MM-HH:MM`: DAYS is `daily`, a day (`mon`), a range (`mon-fri`, `fri-mon`) or a
list (`mon,wed,fri`); the times are local to the schedule's IANA time zone, and a window whose end
is not after its start runs past midnight into the next day (`fri 22:00-02:00`). At each window's
start the endpoint is woken; inside one it is not put to sleep.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DAYS", "ScheduleError", "WarmSchedule", "parse_schedule"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?P<days>[a-z,-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")
_A_MONDAY = 1_793_577_600.0  # 2026-11-02 00:00 UTC: any week does
_LOOK_AHEAD_DAYS = 8  # every window of a week starts within this many days of any moment


class ScheduleError(ValueError):
    """A window or time zone that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class _Window:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after local midnight
    length: int  # minutes


class WarmSchedule:
    """The windows (as written) of one endpoint, in `timezone`; ScheduleError when one is wrong."""

    def __init__(self, windows: Sequence[str], timezone: str = "UTC") -> None:
        self.windows = tuple(windows)
        self.timezone = timezone
        self._zone = _zone(timezone)
        self._parsed = tuple(_window(text) for text in self.windows)

    def _spans(self, around: float) -> list[tuple[float, float]]:
        """(start, end) wall times of every window that starts from a day before `around` to a
        week after it, by start."""
        first = dt.datetime.fromtimestamp(around, self._zone).date() - dt.timedelta(days=1)
        spans = []
        for offset in range(_LOOK_AHEAD_DAYS + 1):
            day = first + dt.timedelta(days=offset)
            midnight = dt.datetime.combine(day, dt.time(), self._zone)
            for window in self._parsed:
                if day.weekday() in window.days:
                    start = midnight + dt.timedelta(minutes=window.start)
                    end = start + dt.timedelta(minutes=window.length)
                    spans.append((start.timestamp(), end.timestamp()))
        return sorted(spans)

    def window_at(self, now: float) -> tuple[float, float] | None:
        """(start, end) of the window `now` is in (windows that meet or overlap count as one)."""
        window: tuple[float, float] | None = None
        for start, end in self._spans(now):
            if window is None:
                if start <= now < end:
                    window = (start, end)
            elif start <= window[1]:
                window = (window[0], max(window[1], end))
        if window is None:
            return None
        earlier = [span for span in self._spans(window[0] - 1) if span[0] < window[0] <= span[1]]
        return (min(span[0] for span in earlier), window[1]) if earlier else window

    def warm_until(self, now: float) -> float | None:
        """The end of the window `now` is in, or None."""
        window = self.window_at(now)
        return None if window is None else window[1]

    def longest_window(self) -> float:
        """Seconds of the longest window of a week (windows that meet or overlap count as one)."""
        longest, current = 0.0, None
        for start, end in self._spans(_A_MONDAY):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
            else:
                current = (start, end)
            longest = max(longest, current[1] - current[0])
        return longest

    def next_start(self, now: float) -> float | None:
        """The first window start after `now`, or None without windows."""
        return next((start for start, _ in self._spans(now) if start > now), None)

    def to_dict(self) -> dict[str, object]:
        return {"warm": list(self.windows), "timezone": self.timezone}


def parse_schedule(windows: Sequence[str], timezone: str = "UTC") -> WarmSchedule:
    """The schedule of `windows` in `timezone`; ScheduleError naming the first problem."""
    if isinstance(windows, str):
        raise ScheduleError('warm must be a list of windows, e.g. ["mon-fri 08:30-18:00"]')
    return WarmSchedule(tuple(" ".join(str(text).lower().split()) for text in windows), timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"'{name[:60]}' is not an IANA time zone (e.g. UTC, Europe/Paris)") from None


def _window(text: str) -> _Window:
    match = _WINDOW.match(text)
    if match is None:
        raise ScheduleError(f"'{text[:60]}' is not a window: DAYS HH:MM-HH:MM, e.g. 'mon-fri 08:30-18:00'")
    start, end = _minutes(text, match["start"]), _minutes(text, match["end"])
    length = end - start if end > start else end + 24 * 60 - start
    return _Window(_days(text, match["days"]), start, length)


def _minutes(text: str, clock: str) -> int:
    hours, minutes = (int(part) for part in clock.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ScheduleError(f"'{text[:60]}': {clock} is not a time of day")
    return hours * 60 + minutes


def _days(text: str, spec: str) -> frozenset[int]:
    if spec == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(
                f"'{text[:60]}': days are daily, mon..sun, a range (mon-fri) or a list (mon,wed)"
            )
        begin, stop = DAYS.index(first), DAYS.index(last or first)
        days.update((begin + step) % 7 for step in range((stop - begin) % 7 + 1))
    return frozenset(days)
