"""The chart of a replay: each policy's cost against the requests it made meet a cold start, drawn
by matplotlib (its Agg canvas: no display needed) as SVG or PNG, by the file's suffix.

matplotlib is imported here only, when a chart is asked for: `serve` never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHART_FORMATS", "draw_chart"]

CHART_FORMATS = (".svg", ".png")


def draw_chart(policies: Mapping[str, Mapping[str, Any]], title: str, path: Path) -> None:
    """Cost (y, dollars) against cold hits (x) for each policy, one labelled point each (its `gid`
    in the SVG is `policy:NAME`), and the fixed timers' line through the `idle:` policies in order
    of cost (`fixed-timers`, when there are two or more): a policy below it makes fewer requests wait
    than a fixed timer would at its cost. Written to `path` (.svg or .png)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.25), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    timers = sorted(
        (float(figures["cost"]), int(figures["cold_hits"]))
        for name, figures in policies.items()
        if name.startswith("idle:")
    )
    if len(timers) >= 2:
        axes.plot(
            [hits for _, hits in timers],
            [cost for cost, _ in timers],
            color="#a0aec0",
            linestyle="--",
            gid="fixed-timers",
            label="fixed timers (idle:…)",
            zorder=2,
        )
        axes.legend(loc="upper right", fontsize=9)
    for name, figures in policies.items():
        cost, hits = float(figures["cost"]), int(figures["cold_hits"])
        colour = "#2b6cb0" if name.startswith("idle:") else "#c05621"
        axes.scatter([hits], [cost], s=40, color=colour, gid=f"policy:{name}", zorder=3)
        axes.annotate(
            f"{name}: ${cost:,.2f}, {hits:,} cold hits",
            (hits, cost),
            xytext=(6, 6),
            textcoords="offset points",
            fontsize=9,
        )
    axes.set_title(title)
    axes.set_xlabel("requests that met a cold start")
    axes.set_ylabel("cost ($)")
    most_hits = max((int(f["cold_hits"]) for f in policies.values()), default=0)
    most_cost = max((float(f["cost"]) for f in policies.values()), default=0.0)
    axes.set_xlim(0, most_hits * 1.4 or 1)  # room on the right for the labels
    axes.set_ylim(0, most_cost * 1.15 or 1)
    axes.grid(True, color="#e2e8f0", zorder=0)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "crazy-gary"}):
        figure.savefig(path, format=path.suffix.lower().lstrip("."), facecolor="white")
