"""Seeded synthetic weeks of traffic: the shapes of use a dedicated endpoint meets, for `replay`.

- `office`: people at work, Monday to Friday 09:00-18:00 (busiest late morning and mid-afternoon,
  quiet at lunch), in sessions of a few requests tens of seconds apart; a few stray ones at night.
- `nightly`: a batch job every night at 02:00 (a few hundred requests within about twenty minutes)
  and a trickle of requests by day.
- `bursty`: quiet for hours, then a burst of tens to hundreds of requests within minutes, at random
  times of any day (an agent, a demo, a backfill).

Each is a Poisson process of sessions with a rate that follows the hour of the week, so the same
seed always gives the same trace. Times are Unix seconds from `start` (a Monday 00:00 UTC by default).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from crazy_gary.replay.traces import TraceRequest

__all__ = ["MONDAY", "PATTERNS", "synthetic_week", "write_trace"]

MONDAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()  # a Monday, 00:00 UTC
WEEK = 7 * 86400


def _office_rate(hour_of_week: float) -> float:
    """Sessions an hour: working hours of working days, with a dip at lunch; a little at night."""
    day, hour = divmod(hour_of_week, 24)
    if day >= 5 or not 9 <= hour < 18:
        return 0.15
    return (
        10.0 * (0.55 + 0.45 * math.sin(math.pi * (hour - 9) / 4.5) ** 2) * (0.4 if 12 <= hour < 13 else 1.0)
    )


def _nightly_rate(hour_of_week: float) -> float:
    hour = hour_of_week % 24
    return 0.8 if 8 <= hour < 20 else 0.1


def _bursty_rate(hour_of_week: float) -> float:
    return 0.12


def _session(rng: random.Random, at: float, pattern: str) -> Iterable[float]:
    """The request times of one session that begins at `at`."""
    if pattern == "bursty":
        count, gap = rng.randint(20, 200), rng.uniform(0.5, 4.0)
    else:
        count, gap = 1 + int(rng.expovariate(1 / 3)), 40.0
    for _ in range(count):
        yield at
        at += rng.expovariate(1 / gap)


def _nightly_batches(rng: random.Random, start: float) -> Iterable[float]:
    for day in range(7):
        at = start + day * 86400 + 2 * 3600 + rng.uniform(0, 120)
        for _ in range(rng.randint(250, 400)):
            yield at
            at += rng.expovariate(1 / 3.5)


PATTERNS: dict[str, Callable[[float], float]] = {
    "office": _office_rate,
    "nightly": _nightly_rate,
    "bursty": _bursty_rate,
}


def synthetic_week(
    pattern: str, *, seed: int = 1, start: float = MONDAY, scale: float = 1.0
) -> list[TraceRequest]:
    """A week of `pattern` (see the module doc), oldest first; `scale` multiplies the session rate."""
    rate_of = PATTERNS[pattern]
    rng = random.Random(f"{pattern}:{seed}")
    peak = max(rate_of(hour / 4) for hour in range(7 * 24 * 4)) * scale
    times: list[float] = []
    at = start
    while True:  # thinning: sessions at the peak rate, each kept with the rate of its hour
        at += rng.expovariate(peak / 3600)
        if at >= start + WEEK:
            break
        if rng.random() * peak < rate_of((at - start) / 3600) * scale:
            times.extend(_session(rng, at, pattern))
    if pattern == "nightly":
        times.extend(_nightly_batches(rng, start))
    return [
        TraceRequest(
            at=round(at, 3),
            prompt_tokens=int(rng.lognormvariate(6.0, 0.8)),
            completion_tokens=int(rng.lognormvariate(5.0, 0.9)),
        )
        for at in sorted(t for t in times if t < start + WEEK)
    ]


def write_trace(requests: Iterable[TraceRequest], path: Path) -> None:
    """Write `requests` as a CSV trace `replay` reads: `timestamp` (ISO 8601, UTC) and the tokens."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["timestamp", "prompt_tokens", "completion_tokens"])
        for request in requests:
            when = dt.datetime.fromtimestamp(request.at, dt.UTC).isoformat(timespec="milliseconds")
            writer.writerow([when.replace("+00:00", "Z"), request.prompt_tokens, request.completion_tokens])
