"""The synthetic sample weeks: seeded (the same every time), shaped as their names say, readable by
`replay`, and replayed the same whether the policies run in one process or side by side."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from crazy_gary.core.specs import EndpointSpec
from crazy_gary.replay import session
from crazy_gary.replay.policies import parse_policy
from crazy_gary.replay.synthetic import MONDAY, PATTERNS, WEEK, synthetic_week, write_trace
from crazy_gary.replay.traces import read_trace

SAMPLES = Path(__file__).parents[2] / "samples" / "traces"
SPEC = EndpointSpec(
    key="120b", url="demo/gpt-oss-120b", namespace="demo", name="gpt-oss-120b", price_per_hour=5.0
)


def _hours(pattern: str) -> Counter[tuple[int, int]]:
    """Requests per (weekday, hour) of the pattern's week."""
    return Counter(
        (when.weekday(), when.hour)
        for when in (dt.datetime.fromtimestamp(r.at, dt.UTC) for r in synthetic_week(pattern))
    )


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_a_week_is_the_same_for_a_seed_and_the_shipped_sample_is_it(pattern: str, tmp_path: Path) -> None:
    """The same seed gives the same week, inside the week, in order; the sample file in the repository
    is that week as `replay` reads it (scripts/sample_traces.py wrote it)."""
    week = synthetic_week(pattern, seed=1)
    assert week == synthetic_week(pattern, seed=1)
    assert week != synthetic_week(pattern, seed=2)
    times = [request.at for request in week]
    assert times == sorted(times) and times[0] >= MONDAY and times[-1] < MONDAY + WEEK
    write_trace(week, tmp_path / "week.csv")
    written = read_trace(tmp_path / "week.csv")
    shipped = read_trace(SAMPLES / f"synthetic-{pattern}-week.csv")
    assert [r.at for r in shipped] == [r.at for r in written]
    assert [r.at for r in written] == pytest.approx(times, abs=0.001)


def test_office_traffic_keeps_office_hours() -> None:
    """Most requests of `office` come on working days between 09:00 and 18:00."""
    hours = _hours("office")
    working = sum(count for (day, hour), count in hours.items() if day < 5 and 9 <= hour < 18)
    assert working >= 0.9 * sum(hours.values())


def test_the_nightly_batch_runs_at_two_every_night() -> None:
    """`nightly` has its busiest hour at 02:00 on every day of the week."""
    hours = _hours("nightly")
    for day in range(7):
        busiest = max(range(24), key=lambda hour, day=day: hours[(day, hour)])
        assert busiest == 2


def test_bursty_traffic_comes_in_bursts() -> None:
    """`bursty` is mostly quiet: most of its hours hold no request, and a few hold most of them."""
    hours = _hours("bursty")
    assert len(hours) < 0.25 * 7 * 24
    assert sum(sorted(hours.values())[-10:]) >= 0.5 * sum(hours.values())


def test_policies_side_by_side_give_what_one_process_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live policies replayed in processes of their own answer exactly what one process answers."""
    requests = synthetic_week("office", seed=3)[:300]
    policies = [parse_policy(name) for name in ("idle:5m", "idle:15m", "always", "oracle")]
    setup = session.setup_for(requests, [SPEC], 240.0, policies)
    alone = session.replay(requests, setup, policies)
    monkeypatch.setattr(session, "PARALLEL_FROM", 1)
    assert session.replay(requests, setup, policies) == alone
