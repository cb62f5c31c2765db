"""`replay` against an independent computation of the same policies on a seeded trace: the live
manager, router and auto-sleep on the manual clock must bill, start and make wait as a plain model
of those policies says (billed seconds within 3 %, cold starts and cold hits within 2 %)."""

from __future__ import annotations

import itertools
import json
import random
import re
import struct
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from crazy_gary.core.specs import EndpointSpec
from crazy_gary.replay.chart import draw_chart
from crazy_gary.replay.policies import PolicyError, oracle_billing, parse_policy
from crazy_gary.replay.session import replay, setup_for
from crazy_gary.replay.traces import TraceRequest

COLD, PENDING = 240.0, 1.0  # the simulator waits a second in `pending` before each cold start
SPEC = EndpointSpec(
    key="120b", url="demo/gpt-oss-120b", namespace="demo", name="gpt-oss-120b", price_per_hour=5.0
)


def bursty_trace(seed: int = 7, bursts: int = 40) -> list[TraceRequest]:
    """Bursts of 1 to 6 requests 20 s apart, the bursts 2 to 60 minutes apart."""
    rng = random.Random(seed)
    at, requests = 1_795_000_000.0, []
    for _ in range(bursts):
        at += rng.uniform(120, 3600)
        for index in range(rng.randint(1, 6)):
            requests.append(TraceRequest(at + 20 * index))
    return requests


def expected_idle(arrivals: list[float], idle: float, end: float) -> tuple[float, int, int]:
    """Billed seconds, cold starts, cold hits of `idle:` on one endpoint, asleep at first: a request
    to a sleeping endpoint wakes it (billed from the end of `pending`), waits until it runs, and the
    endpoint sleeps `idle` seconds after the last activity (a request's start or end)."""
    billed, starts, hits = 0.0, 0, 0
    cycle = False
    bill_from = ready = last = 0.0
    for at in arrivals:
        if cycle and at >= last + idle:
            billed += last + idle - bill_from
            cycle = False
        if not cycle:
            cycle, starts, hits = True, starts + 1, hits + 1
            bill_from, ready = at + PENDING, at + PENDING + COLD
            last = ready
        elif at < ready:
            hits += 1
        else:
            last = at
    if cycle:
        billed += min(end, last + idle) - bill_from
    return billed, starts, hits


def expected_oracle(arrivals: list[float]) -> tuple[float, int]:
    """The oracle by its definition, gap by gap: the cheaper of staying up and waking just in time."""
    stay_up_or_wake = [min(after - before, COLD) for before, after in itertools.pairwise(arrivals)]
    starts = 1 + sum(1 for before, after in itertools.pairwise(arrivals) if after - before > COLD)
    return COLD + sum(stay_up_or_wake), starts


@pytest.fixture(scope="module")
def replayed() -> tuple[list[TraceRequest], dict[str, dict[str, float]], float]:
    trace = bursty_trace()
    policies = [parse_policy(text) for text in ("idle:15m", "idle:5m", "oracle", "always")]
    setup = setup_for(trace, [SPEC], COLD, policies)
    return trace, replay(trace, setup, policies)["policies"], setup.end


@pytest.mark.parametrize(("policy", "idle"), [("idle:15m", 900.0), ("idle:5m", 300.0)])
def test_idle_policies_bill_start_and_hit_as_the_model_says(
    replayed: tuple[list[TraceRequest], dict[str, dict[str, float]], float], policy: str, idle: float
) -> None:
    trace, figures, end = replayed
    billed, starts, hits = expected_idle([request.at for request in trace], idle, end)
    got = figures[policy]
    assert got["billed_seconds"] == pytest.approx(billed, rel=0.03)
    assert got["cold_starts"] == pytest.approx(starts, rel=0.02, abs=1)
    assert got["cold_hits"] == pytest.approx(hits, rel=0.02, abs=1)
    assert got["cost"] == pytest.approx(got["billed_seconds"] * 5.0 / 3600, rel=1e-6)
    assert got["requests"] == len(trace) and got["failed"] == 0
    assert COLD <= got["added_wait_max"] <= COLD + 15  # a cold start's wait, and no more


def test_the_oracle_and_always(
    replayed: tuple[list[TraceRequest], dict[str, dict[str, float]], float],
) -> None:
    trace, figures, end = replayed
    billed, starts = expected_oracle([request.at for request in trace])
    assert figures["oracle"]["billed_seconds"] == pytest.approx(billed, rel=1e-6)
    assert figures["oracle"]["cold_starts"] == starts and figures["oracle"]["cold_hits"] == 0
    always = figures["always"]
    assert always["cold_starts"] == 1 and always["saved"] == 0
    first_billed = trace[0].at - 60 + PENDING  # woken at the start of the period
    assert always["billed_seconds"] == pytest.approx(end - first_billed, rel=0.01)
    assert figures["oracle"]["cost"] < figures["idle:5m"]["cost"] < always["cost"]
    assert figures["idle:15m"]["cold_hits"] < figures["idle:5m"]["cold_hits"]
    assert figures["idle:5m"]["saved"] == pytest.approx(always["cost"] - figures["idle:5m"]["cost"], abs=1e-5)


def test_the_oracle_formula_on_a_small_case() -> None:
    assert oracle_billing([0.0, 100.0, 1000.0], 240.0) == (240.0 + 100.0 + 240.0, 2)
    assert oracle_billing([], 240.0) == (0.0, 0)


def test_a_policy_that_does_not_exist_is_one_clear_line() -> None:
    with pytest.raises(PolicyError, match="is not a policy: idle:DURATION"):
        parse_policy("idle:soon")
    assert parse_policy("idle:90s").auto_sleep == 90 and parse_policy("idle:1.5h").auto_sleep == 5400


def test_the_command_prints_a_table_and_json(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = [f"{request.at},120b" for request in bursty_trace(bursts=6)]
    trace.write_text("timestamp,model\n" + "\n".join(rows) + "\n")
    env = {"PATH": "/usr/bin:/bin", "CRAZY_GARY_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    run = [
        sys.executable,
        "-m",
        "crazy_gary.cli",
        "replay",
        str(trace),
        "--policy",
        "idle:15m",
        "--policy",
        "oracle",
    ]
    table = subprocess.run(
        [*run, "--cold-start", "240"], env=env, capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[:3] == ["policy", "cost", "billed_seconds"]
    as_json = subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=120)
    figures = json.loads(as_json.stdout)["policies"]
    assert set(figures) == {"idle:15m", "oracle"} and figures["oracle"]["cold_hits"] == 0
    assert figures["oracle"]["vs_oracle"] == 1.0
    ratio = figures["idle:15m"]["cost"] / figures["oracle"]["cost"]
    assert figures["idle:15m"]["vs_oracle"] == pytest.approx(ratio, abs=0.001)
    bad = subprocess.run(
        [*run[:4], str(tmp_path / "nope.csv")], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


SVG = "{http://www.w3.org/2000/svg}"


def _points(path: Path) -> dict[str, tuple[float, float]]:
    """Each policy's point in the SVG: (x, y) of the marker in its `policy:NAME` group."""
    points = {}
    for group in ElementTree.parse(path).getroot().iter(f"{SVG}g"):
        name = group.get("id") or ""
        if name.startswith("policy:"):
            (marker,) = group.iter(f"{SVG}use")
            points[name.removeprefix("policy:")] = (float(marker.get("x", "0")), float(marker.get("y", "0")))
    return points


def test_the_chart_draws_a_labelled_point_per_policy(tmp_path: Path) -> None:
    """Cost up, cold hits right: the cheapest policy lowest, the one with most cold hits rightmost;
    the same chart as PNG."""
    figures = {
        "idle:5m": {"cost": 10.0, "cold_hits": 50},
        "oracle": {"cost": 5.0, "cold_hits": 0},
        "always": {"cost": 40.0, "cold_hits": 1},
    }
    draw_chart(figures, "trace <x>: 3 requests", tmp_path / "c.svg")
    points = _points(tmp_path / "c.svg")
    assert set(points) == set(figures)
    x = {name: point[0] for name, point in points.items()}
    y = {name: point[1] for name, point in points.items()}
    assert y["always"] < y["idle:5m"] < y["oracle"]  # SVG's y grows downwards
    assert x["oracle"] < x["always"] < x["idle:5m"]
    texts = [t.text or "" for t in ElementTree.parse(tmp_path / "c.svg").getroot().iter(f"{SVG}text")]
    assert "trace <x>: 3 requests" in texts and "oracle: $5.00, 0 cold hits" in texts
    draw_chart(figures, "trace <x>: 3 requests", tmp_path / "c.png")
    png = (tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (800, 525)


def test_the_chart_draws_the_fixed_timers_line_through_the_idle_policies(tmp_path: Path) -> None:
    """The line joins the `idle:` points in order of cost and no other; with one timer there is none."""
    figures = {
        "idle:60m": {"cost": 30.0, "cold_hits": 10},
        "idle:5m": {"cost": 10.0, "cold_hits": 50},
        "idle:15m": {"cost": 18.0, "cold_hits": 30},
        "adaptive": {"cost": 15.0, "cold_hits": 20},
    }
    draw_chart(figures, "t", tmp_path / "c.svg")
    root = ElementTree.parse(tmp_path / "c.svg").getroot()
    line = [g for g in root.iter(f"{SVG}g") if g.get("id") == "fixed-timers"]
    assert len(line) == 1
    path = next(line[0].iter(f"{SVG}path")).get("d") or ""
    vertices = [tuple(map(float, pair)) for pair in re.findall(r"([-\d.]+) ([-\d.]+)", path)]
    points = _points(tmp_path / "c.svg")
    timers = [points[name] for name in ("idle:5m", "idle:15m", "idle:60m")]
    assert len(vertices) == 3
    for (vx, vy), (px, py) in zip(vertices, timers, strict=True):
        assert abs(vx - px) < 1 and abs(vy - py) < 1
    draw_chart({"idle:5m": figures["idle:5m"], "adaptive": figures["adaptive"]}, "t", tmp_path / "d.svg")
    root = ElementTree.parse(tmp_path / "d.svg").getroot()
    assert not [g for g in root.iter(f"{SVG}g") if g.get("id") == "fixed-timers"]


def test_the_command_draws_the_chart_and_refuses_another_format(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp\n" + "\n".join(str(r.at) for r in bursty_trace(bursts=4)) + "\n")
    env = {"PATH": "/usr/bin:/bin", "CRAZY_GARY_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    run = [
        sys.executable,
        "-m",
        "crazy_gary.cli",
        "replay",
        str(trace),
        "--policy",
        "idle:5m",
        "--policy",
        "oracle",
    ]
    for name in ("c.svg", "c.PNG"):
        drawn = subprocess.run(
            [*run, "--chart", str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=120
        )
        assert drawn.returncode == 0, drawn.stderr
    assert set(_points(tmp_path / "c.svg")) == {"idle:5m", "oracle"}
    assert (tmp_path / "c.PNG").read_bytes()[:4] == b"\x89PNG"
    refused = subprocess.run(
        [*run, "--chart", str(tmp_path / "c.pdf")], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and refused.stderr == "error: --chart: c.pdf is neither .svg nor .png\n"


def test_a_schedule_keeps_its_windows_warm_and_is_idle_15m_outside() -> None:
    """`schedule:` wakes the endpoint at each window's start and keeps it up to the window's end, so
    the requests inside a window meet no cold start; outside it behaves as `idle:15m`."""
    day = 1_794_960_000.0  # 2026-11-18 00:00 UTC, a Wednesday
    early = [TraceRequest(day + 7 * 3600)]  # 07:00, before the window
    inside = [TraceRequest(day + 9.5 * 3600 + 600 * n) for n in range(6)]  # 09:30 to 10:20
    late = [TraceRequest(day + 20 * 3600)]  # 20:00, after it
    requests = early + inside + late
    policies = [parse_policy("schedule:wed 09:00-12:00"), parse_policy("idle:15m")]
    figures = replay(requests, setup_for(requests, [SPEC], COLD, policies), policies)["policies"]
    scheduled, idle = figures["schedule:wed 09:00-12:00"], figures["idle:15m"]
    assert (scheduled["cold_starts"], scheduled["cold_hits"]) == (3, 2)  # 07:00, 09:00 (no hit), 20:00
    assert (idle["cold_starts"], idle["cold_hits"]) == (3, 3)
    # 07:00 and 20:00 as idle:15m bills them; up from 09:00 (after `pending`) until 12:00
    expected = 2 * (COLD + 900) + 3 * 3600 - PENDING
    assert scheduled["billed_seconds"] == pytest.approx(expected, abs=5)


def test_a_schedule_policy_says_what_is_wrong_with_it() -> None:
    with pytest.raises(PolicyError, match="'schedule:someday 08:00-09:00': 'someday 08:00-09:00': days are"):
        parse_policy("schedule:someday 08:00-09:00")
    with pytest.raises(PolicyError, match="is not an IANA time zone"):
        parse_policy("schedule:mon 08:00-09:00@Nowhere/Land")
    paris = parse_policy("schedule:mon-fri 08:30-18:00;sat 10:00-12:00@Europe/Paris")
    assert paris.warm is not None and paris.warm.timezone == "Europe/Paris" and len(paris.warm.windows) == 2


def test_adaptive_learns_to_sleep_at_once_after_the_last_request_of_a_habit() -> None:
    """Four days (Wednesday to Saturday) of a nightly batch (40 requests 5 s apart at 02:00) and a
    morning of requests five minutes apart (10:00-12:00): adaptive learns, from the trace as it
    goes, that the endpoint may sleep at once after the batch and after noon, and stays up between
    the morning's requests; on Friday, the third working day, it wakes the endpoint ahead of the
    batch, whose 40 requests then do not wait. It bills less than idle:15m all the same."""
    day0 = 1_794_960_000.0  # 2026-11-18 00:00 UTC, a Wednesday
    requests = []
    for day in range(4):
        midnight = day0 + day * 86400
        requests += [TraceRequest(midnight + 2 * 3600 + 5 * n) for n in range(40)]
        requests += [TraceRequest(midnight + 10 * 3600 + 300 * n) for n in range(25)]
    policies = [parse_policy("adaptive"), parse_policy("idle:15m")]
    figures = replay(requests, setup_for(requests, [SPEC], COLD, policies), policies)["policies"]
    adaptive, idle = figures["adaptive"], figures["idle:15m"]
    assert adaptive["cold_hits"] == idle["cold_hits"] - 40
    assert adaptive["billed_seconds"] < idle["billed_seconds"] - 3000
