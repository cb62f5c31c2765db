"""Warm-up schedules: windows read as written, and a week of them run by the manager on the manual
clock (woken at each window's start by `schedule`, never put to sleep inside one) in milliseconds."""

from __future__ import annotations

import datetime as dt

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.schedules import ScheduleError, parse_schedule
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus

from .fakes import FakeManagement

MONDAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()


def at(day: int, hour: float, zone: dt.tzinfo = dt.UTC) -> float:
    """Wall time of `hour` o'clock on day `day` of the week of 2026-11-02 (0 = Monday)."""
    midnight = dt.datetime(2026, 11, 2 + day, tzinfo=zone)
    return (midnight + dt.timedelta(hours=hour)).timestamp()


def scheduled(windows: list[str]) -> EndpointSpec:
    """The simulator's gpt-oss-120b, kept warm in `windows` (UTC)."""
    return EndpointSpec(
        key="120b",
        url="demo/gpt-oss-120b",
        namespace="demo",
        name="gpt-oss-120b",
        warm=parse_schedule(windows),
    )


def test_windows_by_day_range_list_and_past_midnight() -> None:
    """A range wraps the week, a list names days, and a window whose end is not after its start
    ends the next day; windows that meet are one."""
    schedule = parse_schedule(["fri-mon 22:00-02:00", "tue,thu 08:30-12:00", "thu 12:00-13:00"])
    assert schedule.window_at(at(4, 23)) == (at(4, 22), at(5, 2))
    assert schedule.window_at(at(0, 1)) == (at(-1, 22), at(0, 2))  # Sunday 22:00 to Monday 02:00
    assert schedule.window_at(at(1, 3)) is None
    assert schedule.window_at(at(3, 12.5)) == (at(3, 8.5), at(3, 13))
    assert schedule.next_start(at(1, 3)) == at(1, 8.5)


def test_windows_follow_their_time_zone_across_a_clock_change() -> None:
    """`08:00` in Europe/Paris is 07:00 UTC in winter and 06:00 UTC in summer."""
    paris = parse_schedule(["daily 08:00-09:00"], "Europe/Paris")
    winter = dt.datetime(2026, 1, 5, 7, 30, tzinfo=dt.UTC).timestamp()
    summer = dt.datetime(2026, 7, 6, 6, 30, tzinfo=dt.UTC).timestamp()
    assert paris.warm_until(winter) == winter + 1800
    assert paris.warm_until(summer) == summer + 1800


@pytest.mark.parametrize(
    ("windows", "zone", "says"),
    [
        (["weekdays 08:00-09:00"], "UTC", "days are daily, mon..sun"),
        (["mon 8-9"], "UTC", "is not a window: DAYS HH:MM-HH:MM"),
        (["mon 25:00-26:00"], "UTC", "25:00 is not a time of day"),
        (["mon 08:00-09:00"], "Mars/Olympus", "is not an IANA time zone"),
    ],
)
def test_a_wrong_window_or_zone_says_what_is_wrong(windows: list[str], zone: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse_schedule(windows, zone)


async def test_a_week_of_office_windows_wakes_and_sleeps_by_the_schedule() -> None:
    """Monday to Friday 09:00-17:00 with a 15-minute auto-sleep and no request: woken at 09:00 by
    `schedule` each working day, kept up until 17:00, asleep at the weekend; a week in milliseconds."""
    clock = ManualClock(start=MONDAY)
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero"})
    spec = scheduled(["mon-fri 09:00-17:00"])
    events: list[ManagerEvent] = []
    async with HuggingFaceEndpointManager(
        [spec], hf, clock, auto_sleep=900, poll_interval=300, poll_fast_interval=1
    ) as manager:
        manager.subscribe(events.append)
        seen: dict[tuple[int, int], EndpointStatus] = {}
        for hour in range(7 * 24):
            await clock.advance(at(hour // 24, hour % 24 + 0.5) - clock.now())
            seen[(hour // 24, hour % 24)] = manager.status("120b").status
        for day in range(7):
            awake = [hour for hour in range(24) if seen[(day, hour)] is EndpointStatus.RUNNING]
            assert awake == (list(range(9, 17)) if day < 5 else []), day
    wakes = [(e.actor, e.operation) for e in events if e.kind == "operation"]
    assert wakes == [("schedule", "wake"), ("auto-sleep", "sleep")] * 5
    assert hf.calls["starts"] == 5


async def test_inside_a_window_the_status_says_until_when_and_an_operators_sleep_holds() -> None:
    """The status shows the window's end in `warm_until`; an operator's sleep inside the window is
    obeyed (the schedule wakes once per window, at its start)."""
    clock = ManualClock(start=at(0, 8))
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero"})
    spec = scheduled(["mon 09:00-17:00"])
    async with HuggingFaceEndpointManager(
        [spec], hf, clock, poll_interval=300, poll_fast_interval=1
    ) as manager:
        await clock.advance(at(0, 10) - clock.now())
        view = manager.status("120b")
        assert (view.status, view.warm_until) == (EndpointStatus.RUNNING, at(0, 17))
        assert view.auto_sleep_in == pytest.approx(7 * 3600)
        manager.sleep("120b", actor="ops")
        await clock.advance(3600)
        assert manager.status("120b").status is EndpointStatus.SLEEPING
        assert hf.calls["starts"] == 1


def test_hfs_own_idle_timer_outlasts_the_longest_warm_window_and_adaptive_maximum() -> None:
    """HF's idle timer (the safety net, `auto`) is set past the longest time crazy-gary may keep the
    endpoint up without a request, else HF would put it to sleep inside a warm window."""
    from crazy_gary.core.adaptive import AdaptiveSettings
    from crazy_gary.core.scaling import longest_idle, wanted_idle_timer

    office = scheduled(["mon-fri 09:00-17:00", "fri 17:00-20:00"])
    assert parse_schedule(["mon-fri 09:00-17:00", "fri 17:00-20:00"]).longest_window() == 11 * 3600
    assert wanted_idle_timer("auto", longest_idle(office, 900)) == 11 * 60 + 15
    adaptive = EndpointSpec(key="a", url="demo/a", adaptive=AdaptiveSettings(maximum=3600))
    assert wanted_idle_timer("auto", longest_idle(adaptive, 900)) == 60 + 15
    # kept up through a predicted return's window (a minute early, 15 minutes) however short its maximum
    brief = EndpointSpec(key="b", url="demo/b", adaptive=AdaptiveSettings(minimum=60, maximum=300))
    assert wanted_idle_timer("auto", longest_idle(brief, 300)) == 16 + 15
    assert longest_idle(office, 0) == 0  # never put to sleep: HF's timer stays off
