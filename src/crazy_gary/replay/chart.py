"""The chart of a replay: each policy's cost against the requests it made meet a cold start, as an
SVG drawing of its own (no plotting library: a few dozen elements)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["chart_svg"]

WIDTH, HEIGHT, MARGIN = 640, 420, 64


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    if high <= low:
        return (start + end) / 2
    return start + (value - low) / (high - low) * (end - start)


def chart_svg(policies: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """Cost (y, dollars) against cold hits (x) for each policy, one labelled point each."""
    costs = [float(figures["cost"]) for figures in policies.values()]
    hits = [float(figures["cold_hits"]) for figures in policies.values()]
    top, right = max([*costs, 0.0]) * 1.1 or 1.0, max([*hits, 0.0]) * 1.1 or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - 24}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{MARGIN}" y2="40" stroke="black"/>',
        f'<text x="{(WIDTH + MARGIN) / 2}" y="{HEIGHT - 20}" text-anchor="middle">requests that met a cold start</text>',
        f'<text x="18" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 18 {HEIGHT / 2})">cost ($)</text>',
        f'<text x="{MARGIN - 6}" y="{HEIGHT - MARGIN + 4}" text-anchor="end">0</text>',
        f'<text x="{MARGIN - 6}" y="44" text-anchor="end">{top:,.2f}</text>',
        f'<text x="{WIDTH - 24}" y="{HEIGHT - MARGIN + 16}" text-anchor="end">{right:,.0f}</text>',
    ]
    for name, figures in policies.items():
        x = _scale(float(figures["cold_hits"]), 0.0, right, MARGIN, WIDTH - 24)
        y = _scale(float(figures["cost"]), 0.0, top, HEIGHT - MARGIN, 40)
        label = f"{name}: ${float(figures['cost']):,.2f}, {int(figures['cold_hits']):,} cold hits"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#2b6cb0" data-policy="{escape(name)}"/>')
        parts.append(f'<text x="{x + 8:.1f}" y="{y - 8:.1f}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
