"""The auto-sleep policies a trace can be replayed under, and the oracle, their lower bound.

`idle:DURATION` sleeps after that long without a request (`idle:15m`, `idle:90s`, `idle:1h`);
`always` never sleeps; `oracle` knows every arrival in advance and, for each idle gap, stays up or
sleeps and wakes just in time, whichever is billed less: no request meets a cold start, and nothing
costs less without making one wait.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crazy_gary.errors import CrazyGaryError

__all__ = ["DEFAULT_POLICIES", "Policy", "PolicyError", "oracle_billing", "parse_policy"]

DEFAULT_POLICIES = ("idle:15m", "oracle", "always")
_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>s|m|h)?$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class PolicyError(CrazyGaryError):
    """A policy that is not one of those `replay` knows."""

    code = "invalid_policy"


@dataclass(frozen=True)
class Policy:
    """A policy by its name; `auto_sleep` seconds for the live ones (0: never)."""

    name: str
    auto_sleep: float = 0.0
    always: bool = False
    oracle: bool = False


def parse_policy(text: str) -> Policy:
    """The policy `text` names; PolicyError saying which ones exist."""
    name = text.strip()
    if name == "always":
        return Policy(name, always=True)
    if name == "oracle":
        return Policy(name, oracle=True)
    kind, _, value = name.partition(":")
    match = _DURATION.match(value)
    if kind == "idle" and match is not None:
        seconds = float(match["number"]) * _UNIT[match["unit"]]
        if seconds > 0:
            return Policy(name, auto_sleep=seconds)
    raise PolicyError(
        f"'{name[:40]}' is not a policy: idle:DURATION (idle:15m, idle:90s, idle:1h), always or oracle"
    )


def oracle_billing(arrivals: Sequence[float], cold_start: float) -> tuple[float, int]:
    """Billed seconds and cold starts of the oracle for one endpoint's arrivals (sorted): a cold
    start before the first, then for each gap the cheaper of staying up and sleeping to wake just
    in time (a cold start is billed, as HF bills initializing); asleep after the last."""
    if not arrivals:
        return 0.0, 0
    billed, starts = cold_start, 1
    for before, after in itertools.pairwise(arrivals):
        gap = after - before
        if gap > cold_start:
            billed += cold_start
            starts += 1
        else:
            billed += gap
    return billed, starts
