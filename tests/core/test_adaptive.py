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


def _busy_hour_with_pauses(idle: AdaptiveIdle, *, rate: float, pauses: list[float], seed: int = 3) -> None:
    """An hour of requests at `rate` a second, with some of the pauses of `pauses` in it."""
    rng = random.Random(seed)
    at, left = MONDAY + 10 * HOUR, list(pauses)
    while at < MONDAY + 11 * HOUR:
        gap = left.pop() if left and rng.random() < 0.002 else rng.expovariate(rate)
        idle.observe_gap(at, gap)
        at += gap


def test_pauses_in_busy_traffic_are_ridden_through_with_a_margin() -> None:
    """Pauses of 2 to 3 minutes among thousands of short gaps (two requests a second): the pauses are
    kept however many short gaps follow, a sleep in one costs more than riding it, so it stays up
    past the longest seen, and as long again (the next pause may be longer)."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    _busy_hour_with_pauses(
        idle, rate=2.0, pauses=[120, 150, 170, 130, 140, 160, 125, 135, 145, 155, 165, 175]
    )
    longest = max(idle._gaps_near(10) or [0.0])
    assert longest >= 150
    assert idle.idle_time(MONDAY + 10.5 * HOUR, cold_start=300) == 2 * longest


def test_pauses_longer_than_a_sleep_costs_are_slept_through() -> None:
    """Pauses of about seven minutes with a one-minute cold start: a sleep (the cold start billed,
    a request waiting) costs less than riding each pause, so it sleeps as soon as it may."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    at = MONDAY + 10 * HOUR
    for index in range(40):
        gap = 400.0 + index
        idle.observe_gap(at, gap)
        at += gap
    assert idle.idle_time(MONDAY + 10.5 * HOUR, cold_start=60) == 60


def test_busy_traffic_learns_from_its_first_pauses() -> None:
    """Traffic that never paused longer than the shortest idle time sleeps as soon as it may (all it
    has seen says gaps end sooner). One or two pauses say little of the next: the fixed timer applies
    until three came; then it stays up past twice the longest."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    _busy_hour_with_pauses(idle, rate=2.0, pauses=[])
    assert idle.idle_time(MONDAY + 10.5 * HOUR, cold_start=300) == 60
    for index, pause in enumerate([120.0, 100.0, 110.0]):
        idle.observe_gap(MONDAY + (10.6 + index / 10) * HOUR, pause)
        for short in range(20):  # enough new gaps for the idle time to be worked out again
            idle.observe_gap(MONDAY + (10.65 + index / 10) * HOUR + short, 0.5)
        learnt = idle.idle_time(MONDAY + 10.95 * HOUR, cold_start=300)
        assert learnt == (240 if index == 2 else None)


def test_a_new_busy_hour_borrows_the_pauses_of_the_hour_before() -> None:
    """An hour whose first minutes hold hundreds of short gaps and one pause of 70 s does not stay up
    just past that pause: it takes the pauses of the hour around it (up to three minutes), and rides
    a pause of three minutes that comes next."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    _busy_hour_with_pauses(idle, rate=2.0, pauses=[90, 120, 150, 170, 180, 100, 130])
    at = MONDAY + 11 * HOUR
    for index in range(300):
        idle.observe_gap(at + index * 0.5, 0.5)
    idle.observe_gap(at + 200, 70.0)
    learnt = idle.idle_time(at + 300, cold_start=300)
    assert learnt is not None and learnt > 180


def test_quiet_hours_learn_from_every_day_around_them() -> None:
    """Bursts at random hours, each followed by hours of quiet: no hour of the week sees three
    pauses in a week, the hours around it on every day do, and all say: sleep at once."""
    idle = AdaptiveIdle(AdaptiveSettings(minimum=60, maximum=3600))
    rng = random.Random(4)
    at = MONDAY
    while at < MONDAY + 7 * 24 * HOUR:
        for _ in range(rng.randint(20, 100)):
            idle.observe_gap(at, 2.0)
            at += 2.0
        quiet = rng.expovariate(1 / (8 * HOUR))
        idle.observe_gap(at, quiet)
        at += quiet
    thursday_noon = MONDAY + 3 * 24 * HOUR + 12 * HOUR
    assert idle.idle_time(thursday_noon, cold_start=300) == 60
