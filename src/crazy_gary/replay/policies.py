"""The auto-sleep policies a trace can be replayed under, and the oracle, their lower bound.

`idle:DURATION` sleeps after that long without a request (`idle:15m`, `idle:90s`, `idle:1h`);
`always` never sleeps; `schedule:WINDOWS[@ZONE]` keeps the endpoints the trace asks for awake in the
windows (`;` between them, as `warm` has them: `schedule:mon-fri 08:30-18:00@Europe/Paris`) and is
`idle:15m` outside them; `adaptive` learns the idle time from the trace's own gaps as it goes, as
`auto_sleep = "adaptive"` does live; `oracle` knows every arrival in advance and, for each idle gap, stays up or
sleeps and wakes just in time, whichever is billed less: no request meets a cold start, and nothing
costs less without making one wait.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crazy_gary.core.adaptive import AdaptiveSettings
from crazy_gary.core.schedules import ScheduleError, WarmSchedule, parse_schedule
from crazy_gary.errors import CrazyGaryError

__all__ = ["DEFAULT_POLICIES", "Policy", "PolicyError", "oracle_billing", "parse_policy"]

DEFAULT_POLICIES = ("idle:15m", "adaptive", "oracle", "always")
_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>s|m|h)?$")
_FALLBACK_IDLE = 900.0  # a schedule is idle:15m outside its windows; adaptive, until it has learnt
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
    warm: WarmSchedule | None = None
    adaptive: AdaptiveSettings | None = None


def parse_policy(text: str) -> Policy:
    """The policy `text` names; PolicyError saying which ones exist."""
    name = text.strip()
    if name == "always":
        return Policy(name, always=True)
    if name == "oracle":
        return Policy(name, oracle=True)
    if name == "adaptive":
        return Policy(name, auto_sleep=_FALLBACK_IDLE, adaptive=AdaptiveSettings())
    kind, _, value = name.partition(":")
    if kind == "schedule":
        windows, _, zone = value.partition("@")
        try:
            schedule = parse_schedule([w for w in windows.split(";") if w.strip()], zone.strip() or "UTC")
        except ScheduleError as exc:
            raise PolicyError(f"'{name[:60]}': {exc}") from None
        if not schedule.windows:
            raise PolicyError(f"'{name[:60]}': a schedule needs a window, e.g. schedule:mon-fri 08:30-18:00")
        return Policy(name, auto_sleep=_FALLBACK_IDLE, warm=schedule)
    match = _DURATION.match(value)
    if kind == "idle" and match is not None:
        seconds = float(match["number"]) * _UNIT[match["unit"]]
        if seconds > 0:
            return Policy(name, auto_sleep=seconds)
    raise PolicyError(
        f"'{name[:40]}' is not a policy: idle:DURATION (idle:15m, idle:90s, idle:1h), "
        "schedule:WINDOWS[@ZONE] (schedule:mon-fri 08:30-18:00), adaptive, always or oracle"
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
