"""`crazy-gary doctor`: what `serve` would find, checked one thing at a time, as data.

`diagnose(settings)` talks to the Hugging Face management API directly (no crazy-gary server), and
to Redis and the store when they are configured; it never starts, wakes or changes an endpoint (a
health route is only asked of an endpoint that runs). Each finding is a :class:`Check`: `ok`,
`warning` (serving works, but something costs money or surprises) or `error` (something cannot serve).
No check's text holds the token, a key or a password.
"""

from __future__ import annotations

import asyncio
import contextlib

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import SIMULATOR_TOKEN, Settings, load_simulator_config
from crazy_gary.core.ports import ManagementAPI
from crazy_gary.doctor._check import Check, Level, ok, render, report
from crazy_gary.doctor._hugging_face import hugging_face_checks
from crazy_gary.doctor._stores import redis_check, store_check
from crazy_gary.hf.management import HfManagement
from crazy_gary.simulator import SimulatorServer

__all__ = ["Check", "Level", "diagnose", "render", "report", "run_diagnosis"]


def run_diagnosis(settings: Settings) -> list[Check]:
    """`diagnose` on an event loop of its own, for the command line."""
    return asyncio.run(diagnose(settings))


async def diagnose(
    settings: Settings, *, clock: Clock | None = None, management: ManagementAPI | None = None
) -> list[Check]:
    """Every check, in order: Hugging Face (the embedded simulator when simulating), Redis, the store."""
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        api_url = settings.endpoints_api_url
        if settings.simulating and management is None:
            config = load_simulator_config(token=SIMULATOR_TOKEN)
            api_url = (await stack.enter_async_context(SimulatorServer(config, clock))).management_url
            first = ok(
                "hugging face",
                f"simulating: the embedded simulator at {api_url} stands in for Hugging Face (no "
                "HUGGINGFACE_API_KEY, or CRAZY_GARY_SIMULATE on); set HUGGINGFACE_API_KEY to check your account",
            )
        else:
            first = ok("hugging face", f"management API {api_url}, token from HUGGINGFACE_API_KEY")
        if management is None:
            owned = HfManagement(
                settings.token, api_url, attempts=3, timeout=10.0, retry_timeout=15.0, clock=clock
            )
            stack.push_async_callback(owned.aclose)
            management = owned
        checks = [first, *await hugging_face_checks(settings, management)]
    if settings.redis_url:
        checks.append(await redis_check(settings.redis_url))
    checks.append(await store_check(settings))
    return checks
