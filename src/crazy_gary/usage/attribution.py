"""Who used what an endpoint cost: its billed cost in a period split into the share of each key, by
tokens served, and what no request used (its idle time, the row of key None).

An endpoint's cost is split into busy (billed time with a request in flight, at most its whole cost)
and idle. The busy part goes to the keys that used it, in proportion to their tokens; the rest, idle
time and rounding included, is the idle row, so that the rows of an endpoint add up to its cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crazy_gary.store.base import UsageRow

__all__ = ["EndpointCost", "attribute"]


@dataclass(frozen=True)
class EndpointCost:
    """What an endpoint was billed in the period, and its price per hour (None: unknown)."""

    cost: float
    price_per_hour: float | None


def attribute(rows: list[UsageRow], costs: Mapping[str, EndpointCost]) -> list[dict[str, Any]]:
    """The rows of `GET /api/usage`: per endpoint, one per key that used it, then the idle row."""
    used: dict[str, dict[str, list[int]]] = {}
    busy: dict[str, float] = {}
    for row in rows:
        if row.key == "":
            busy[row.model_type] = busy.get(row.model_type, 0.0) + row.busy_seconds
            continue
        counts = used.setdefault(row.model_type, {}).setdefault(row.key, [0, 0, 0])
        counts[0] += row.requests
        counts[1] += row.prompt_tokens
        counts[2] += row.completion_tokens
    answer: list[dict[str, Any]] = []
    for endpoint in sorted(set(used) | set(costs)):
        answer.extend(
            _endpoint_rows(endpoint, used.get(endpoint, {}), busy.get(endpoint, 0.0), costs.get(endpoint))
        )
    return answer


def _endpoint_rows(
    endpoint: str, keys: dict[str, list[int]], busy_seconds: float, billed: EndpointCost | None
) -> list[dict[str, Any]]:
    cost = round(billed.cost, 6) if billed else 0.0
    price = (billed.price_per_hour or 0.0) if billed else 0.0
    busy_cost = min(cost, busy_seconds * price / 3600)
    tokens = sum(prompt + completion for _, prompt, completion in keys.values())
    rows = []
    for key in sorted(keys):
        requests, prompt, completion = keys[key]
        share = busy_cost * (prompt + completion) / tokens if tokens else 0.0
        rows.append(_row(key, endpoint, requests, prompt, completion, round(share, 6)))
    idle = round(cost - sum(row["cost"] for row in rows), 6)
    rows.append(_row(None, endpoint, 0, 0, 0, idle))
    return rows


def _row(
    key: str | None, endpoint: str, requests: int, prompt: int, completion: int, cost: float
) -> dict[str, Any]:
    return {
        "key": key,
        "model_type": endpoint,
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost": cost,
    }
