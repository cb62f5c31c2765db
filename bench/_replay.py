"""How long `replay` takes over a busy week: a seeded synthetic week of office traffic of about
100,000 requests under four policies (`idle:15m`, `idle:60m`, `always`, `oracle`), the live ones
side by side in processes of their own, as `crazy-gary replay` runs them."""

from __future__ import annotations

import time

from crazy_gary.core.specs import EndpointSpec
from crazy_gary.replay.policies import parse_policy
from crazy_gary.replay.session import replay, setup_for
from crazy_gary.replay.synthetic import synthetic_week

__all__ = ["POLICIES", "replay_seconds"]

POLICIES = ("idle:15m", "idle:60m", "always", "oracle")
_SPECS = [
    EndpointSpec(key="120b", url="demo/gpt-oss-120b", namespace="demo", name="gpt-oss-120b", fallback="20b"),
    EndpointSpec(key="20b", url="demo/gpt-oss-20b", namespace="demo", name="gpt-oss-20b"),
]


def replay_seconds(scale: float = 82.0) -> tuple[int, float]:
    """The requests of the week and the seconds its replay under the four policies took."""
    requests = synthetic_week("office", seed=7, scale=scale)
    policies = [parse_policy(name) for name in POLICIES]
    started = time.perf_counter()
    replay(requests, setup_for(requests, _SPECS, 240.0, policies), policies)
    return len(requests), time.perf_counter() - started
