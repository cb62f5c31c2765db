"""`crazy-gary replay`: a trace of requests under auto-sleep policies, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crazy_gary.cli.client import fail
from crazy_gary.errors import CrazyGaryError

__all__ = ["replay"]

_COLUMNS = (
    "cost",
    "billed_seconds",
    "cold_starts",
    "cold_hits",
    "fallbacks",
    "failed",
    "added_wait_p95",
    "saved",
    "vs_oracle",
)


TraceArgument = Annotated[
    Path | None,
    typer.Argument(help="CSV with a header, or JSON lines (README: Choosing a policy); or --from-store."),
]
FromStoreOption = Annotated[
    float | None,
    typer.Option(
        "--from-store",
        min=0,
        max=3650,
        metavar="DAYS",
        help="Replay the requests the store recorded in the last DAYS days instead of a TRACE.",
    ),
]
PolicyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        help="idle:DURATION (idle:15m), schedule:WINDOWS[@ZONE], adaptive, always or oracle; "
        "again for more [default: idle:15m, adaptive, oracle, always].",
    ),
]
ColdStartOption = Annotated[
    float | None,
    typer.Option(
        "--cold-start",
        min=0,
        help="Seconds a cold start lasts [default: the endpoints' last measured one, else 300].",
    ),
]
ChartOption = Annotated[
    Path | None,
    typer.Option("--chart", help="Draw cost against cold hits per policy into FILE (.svg or .png)."),
]


def replay(
    trace: TraceArgument = None,
    from_store: FromStoreOption = None,
    policy: PolicyOption = None,
    cold_start: ColdStartOption = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"policies": {…}} as JSON.')] = False,
    chart: ChartOption = None,
) -> None:
    """Replay TRACE (or the store's own requests) under each policy with the same manager, router and
    auto-sleep code as serve, on a manual clock against the simulator's state machine; print what each
    billed and made wait."""
    from crazy_gary.replay.chart import CHART_FORMATS

    if (trace is None) == (from_store is None):
        fail("give a TRACE file or --from-store DAYS, not both", exit_code=2)
    if from_store is not None and from_store <= 0:
        fail("--from-store: DAYS must be more than 0", exit_code=2)
    if chart is not None and chart.suffix.lower() not in CHART_FORMATS:
        fail(f"--chart: {chart.name} is neither .svg nor .png", exit_code=2)
    try:
        requests, result, title = _run(trace, from_store, policy, cold_start)
    except CrazyGaryError as exc:  # a bad trace, policy or setting: ConfigError among them
        fail(exc.message, exit_code=2)
    if chart is not None:
        from crazy_gary.replay.chart import draw_chart

        try:
            draw_chart(result["policies"], f"{title}: {len(requests):,} requests", chart)
        except OSError as exc:
            fail(f"--chart: cannot write {chart}: {exc.strerror}", exit_code=2)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(_table(result["policies"], len(requests)))


def _run(
    trace: Path | None, days: float | None, policy: list[str] | None, cold_start: float | None
) -> tuple[list[Any], dict[str, Any], str]:
    """The requests replayed, the figures, and the chart's title."""
    import asyncio
    import time

    from crazy_gary.config import load_settings
    from crazy_gary.replay.policies import DEFAULT_POLICIES, parse_policy
    from crazy_gary.replay.session import replay as run
    from crazy_gary.replay.session import setup_for
    from crazy_gary.replay.stored import DAY, measured_cold_start, read_store
    from crazy_gary.replay.traces import TraceError, read_trace

    settings = load_settings()
    policies = [parse_policy(text) for text in (policy or DEFAULT_POLICIES)]
    if days is not None:
        now = time.time()
        requests, measured = asyncio.run(read_store(settings, now - days * DAY, now))
        if not requests:
            raise TraceError(f"--from-store: the store holds no request of the last {days:g} days")
        title = f"the last {days:g} days"
    else:
        assert trace is not None
        requests, measured, title = read_trace(trace), measured_cold_start({}, ()), trace.name
    setup = setup_for(
        requests,
        list(settings.endpoints.values()),
        measured if cold_start is None else cold_start,
        policies,
        wake_timeout=settings.wake_timeout,
        fallback_wait=settings.fallback_wait,
    )
    return requests, run(requests, setup, policies), title


def _table(policies: dict[str, dict[str, float | int | None]], requests: int) -> str:
    header = ("policy", *_COLUMNS)
    rows = [header] + [
        (name, *(_cell(name_, figures.get(name_)) for name_ in _COLUMNS))
        for name, figures in policies.items()
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [f"{requests:,} requests"] + [
        "  ".join(
            str(cell).rjust(width) if i else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)


def _cell(name: str, value: float | int | None) -> str:
    if value is None:
        return "-"
    if name in ("cost", "saved"):
        return f"${value:,.2f}"
    if name == "vs_oracle":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"
