"""Prices of Hugging Face instances, per replica-hour in US dollars (HF's published list)."""

from __future__ import annotations

__all__ = ["PRICE_TABLE", "price_for"]

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
