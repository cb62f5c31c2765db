"""Adaptive auto-sleep: the idle time learnt from an endpoint's own gaps, hour of the week by hour."""

from __future__ import annotations

import random

from crazy_gary.core.adaptive import AdaptiveIdle, AdaptiveSettings

MONDAY = 1_793_577_600.0  # 2026-11-02 00:00 UTC
HOUR = 3600.0


def office_gaps(idle: AdaptiveIdle, weeks: int = 3, seed: int = 5) -> None:
    """Working hours: gaps of about 4 minutes; nights and weekends: one gap of many hours."""
    rng = random.Random(seed)
    for week in range(weeks):
        for day in range(7):
            midnight = MONDAY + (week * 7 + day) * 24 * HOUR
            if day >= 5:
                idle.observe_gap(midnight, 24 * HOUR)
                continue
            at = midnight + 9 * HOUR
            while at < midnight + 17 * HOUR:
                gap = rng.expovariate(1 / 240)
                idle.observe_gap(at, gap)
                at += gap
            idle.observe_gap(at, midnight + 33 * HOUR - at)  # until 09:00 the next day


def test_too_little_history_keeps_the_fixed_timer() -> None:
    idle = AdaptiveIdle(AdaptiveSettings())
    for index in range(10):
        idle.observe_gap(MONDAY + index * 600, 300)
    assert idle.idle_time(MONDAY + 6000, cold_start=300) is None


def test_busy_hours_stay_up_and_quiet_ones_sleep_at_once() -> None:
    """Gaps of minutes by day call for staying up (cheaper than a cold start each time); the gap
    that begins at the end of the day lasts all night, so the end of the day sleeps at once."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    office_gaps(idle)
    wednesday = MONDAY + 2 * 24 * HOUR
    assert idle.idle_time(wednesday + 11 * HOUR, cold_start=300) >= 600
    assert idle.idle_time(wednesday + 17.5 * HOUR, cold_start=300) == 60


def test_the_idle_time_stays_within_its_bounds() -> None:
    idle = AdaptiveIdle(AdaptiveSettings(minimum=120, maximum=1200))
    office_gaps(idle)
    times = {idle.idle_time(MONDAY + hour * HOUR, cold_start=300) for hour in range(7 * 24)}
    assert min(t for t in times if t is not None) >= 120
    assert max(t for t in times if t is not None) <= 1200


def test_a_longer_cold_start_keeps_it_up_longer() -> None:
    """The dearer a sleep (a long cold start is billed and makes requests wait), the longer it stays."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    rng = random.Random(9)
    at = MONDAY
    for _ in range(500):
        gap = rng.choice([30.0, 30.0, 30.0, rng.uniform(600, 3000)])
        idle.observe_gap(at, gap)
        at += gap
    short = idle.idle_time(MONDAY + 3 * HOUR, cold_start=30)
    long = idle.idle_time(MONDAY + 3 * HOUR, cold_start=900)
    assert short is not None and long is not None and short < long
