"""Prices of Hugging Face instances (HF's published list) and what an endpoint cost and saved."""

from __future__ import annotations

from dataclasses import dataclass

from crazy_gary.core.status import HfState

__all__ = ["PRICE_TABLE", "CostReport", "billed_seconds", "cost_report", "price_for"]

PRICE_TABLE: dict[str, float] = {
    "aws nvidia-t4 x1": 0.50,
    "aws nvidia-l4 x1": 0.80,
    "aws nvidia-l4 x4": 3.80,
    "aws nvidia-a10g x1": 1.00,
    "aws nvidia-l40s x1": 1.80,
    "aws nvidia-l40s x4": 8.30,
    "aws nvidia-l40s x8": 23.50,
    "aws nvidia-a100 x1": 2.50,
    "aws nvidia-a100 x2": 5.00,
    "aws nvidia-a100 x4": 10.00,
    "aws nvidia-a100 x8": 20.00,
    "aws nvidia-h100 x1": 4.50,
    "aws nvidia-h100 x2": 9.00,
    "aws nvidia-h100 x4": 18.00,
    "aws nvidia-h100 x8": 36.00,
    "aws nvidia-h200 x1": 5.00,
    "aws nvidia-h200 x2": 10.00,
    "aws nvidia-h200 x4": 20.00,
    "aws nvidia-h200 x8": 40.00,
}


def price_for(instance: str | None) -> float | None:
    """The hourly price of an instance such as `aws nvidia-h200 x1`, or None when unlisted."""
    return PRICE_TABLE.get(instance) if instance else None


BILLED_STATES = frozenset({HfState.INITIALIZING.value, HfState.RUNNING.value})
DAY = 86_400.0


def billed_seconds(history: list[tuple[float, str]], start: float, end: float) -> float:
    """Seconds within [start, end] that HF bills: spent `initializing` or `running`.

    `history` is (time, HF state) oldest first; each state lasts until the next one, the last until `end`.
    """
    total = 0.0
    for index, (at, state) in enumerate(history):
        if state not in BILLED_STATES:
            continue
        until = history[index + 1][0] if index + 1 < len(history) else end
        total += max(0.0, min(until, end) - max(at, start))
    return total


@dataclass(frozen=True)
class CostReport:
    """One endpoint's money in US dollars, as `GET /api/endpoints/costs` shows it."""

    price_per_hour: float | None
    billed_seconds: float
    cost: float
    saved: float
    projected_month: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "price_per_hour": self.price_per_hour,
            "billed_seconds": round(self.billed_seconds, 3),
            "cost": round(self.cost, 6),
            "saved": round(self.saved, 6),
            "projected_month": round(self.projected_month, 6),
        }


def cost_report(
    history: list[tuple[float, str]], first_seen: float, now: float, price: float | None
) -> CostReport:
    """Cost since first seen; `saved` against always-on over the same period; a month at the last day's rate."""
    billed = billed_seconds(history, first_seen, now)
    hourly = price or 0.0
    last_day = billed_seconds(history, now - DAY, now)
    return CostReport(
        price_per_hour=price,
        billed_seconds=billed,
        cost=billed * hourly / 3600,
        saved=max(0.0, (now - first_seen) - billed) * hourly / 3600,
        projected_month=last_day * hourly / 3600 * 30,
    )
