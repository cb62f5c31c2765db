"""`crazy-gary replay`: a trace of requests under auto-sleep policies, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from crazy_gary.cli.client import fail
from crazy_gary.errors import ConfigError, CrazyGaryError

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


def replay(
    trace: Annotated[
        Path, typer.Argument(help="CSV with a header, or JSON lines (README: Choosing a policy).")
    ],
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            help="idle:DURATION (idle:15m), schedule:WINDOWS[@ZONE], adaptive, always or oracle; "
            "again for more [default: idle:15m, adaptive, oracle, always].",
        ),
    ] = None,
    cold_start: Annotated[
        float | None, typer.Option("--cold-start", min=0, help="Seconds a cold start lasts (default 300).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"policies": {…}} as JSON.')] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Draw cost against cold hits per policy into FILE (.svg).")
    ] = None,
) -> None:
    """Replay TRACE under each policy with the same manager, router and auto-sleep code as serve, on a
    manual clock against the simulator's state machine; print what each billed and made wait."""
    from crazy_gary.config import load_settings
    from crazy_gary.replay.policies import DEFAULT_POLICIES, parse_policy
    from crazy_gary.replay.session import DEFAULT_COLD_START, setup_for
    from crazy_gary.replay.session import replay as run
    from crazy_gary.replay.traces import read_trace

    if chart is not None and chart.suffix.lower() != ".svg":
        fail(f"--chart: {chart.name} is not an .svg file (the chart is drawn as SVG)", exit_code=2)
    try:
        settings = load_settings()
        policies = [parse_policy(text) for text in (policy or DEFAULT_POLICIES)]
        requests = read_trace(trace)
        setup = setup_for(
            requests,
            list(settings.endpoints.values()),
            DEFAULT_COLD_START if cold_start is None else cold_start,
            policies,
            wake_timeout=settings.wake_timeout,
            fallback_wait=settings.fallback_wait,
        )
        result = run(requests, setup, policies)
    except ConfigError as exc:
        fail(exc.message, exit_code=2)
    except CrazyGaryError as exc:
        fail(exc.message, exit_code=2)
    if chart is not None:
        from crazy_gary.replay.chart import chart_svg

        try:
            chart.write_text(chart_svg(result["policies"], f"{trace.name}: {len(requests):,} requests"))
        except OSError as exc:
            fail(f"--chart: cannot write {chart}: {exc.strerror}", exit_code=2)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(_table(result["policies"], len(requests)))


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
