"""The faults the soak test injects into the simulator, one phase after another, in a loop.

Each phase starts from a clean simulator (no fault, both endpoints running at once) and then sets its
own faults through the simulator's control API (README, "The simulator"); the simulator runs as a
process of its own, so its faults outlive a restart of `serve`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["PHASES", "Faults", "Phase"]

logger = logging.getLogger("bench.soak")

PRIMARY, FALLBACK = "gpt-oss-120b", "gpt-oss-20b"
COLD_START = 3.0  # seconds of the simulator's cold starts outside the phases that slow them
_CLEAN_MANAGEMENT = {"error_rate": 0, "malformed_rate": 0, "latency_ms": 0, "retry_after": None}
_CLEAN_ENDPOINT = {"error_rate": 0, "disconnect_rate": 0, "latency_ms": 0, "cold_start": COLD_START}


@dataclass(frozen=True)
class Phase:
    """A named set of faults; `then` runs `then_after` seconds into the phase (a failing start)."""

    name: str
    management: dict[str, Any] | None = None
    endpoints: dict[str, dict[str, Any]] | None = None
    then: dict[str, dict[str, Any]] | None = None
    then_after: float = 0.0


PHASES = (
    Phase("calm"),
    Phase("management 5xx", management={"error_rate": 0.3, "error_status": 503}),
    Phase("dropped connections and 502s", endpoints={
        PRIMARY: {"disconnect_rate": 0.05, "error_rate": 0.05, "error_status": 502},
        FALLBACK: {"disconnect_rate": 0.05},
    }),
    Phase("slow cold start", endpoints={PRIMARY: {"state": "scaledToZero", "cold_start": 8}}),
    Phase("management 429 burst", management={"error_rate": 0.6, "error_status": 429, "retry_after": 2}),
    Phase("held: both asleep", endpoints={
        PRIMARY: {"state": "scaledToZero", "cold_start": 5},
        FALLBACK: {"state": "scaledToZero", "cold_start": 5},
    }),
    Phase("failing cold start", endpoints={PRIMARY: {"state": "scaledToZero", "cold_start": 6}},
          then={PRIMARY: {"state": "failed"}}, then_after=3.0),
    Phase("management 500 and slow answers", management={"error_rate": 0.3, "error_status": 500},
          endpoints={PRIMARY: {"latency_ms": 300}, FALLBACK: {"latency_ms": 100}}),
)  # fmt: skip


class Faults:
    """Runs `PHASES` in a loop against the simulator at `simulator_url`, `seconds` each."""

    def __init__(self, simulator_url: str, seconds: float) -> None:
        self.simulator_url = simulator_url
        self.seconds = seconds
        self.current = "calm"
        self.failures = 0  # control calls that failed (the simulator is never faulted itself)

    async def run(self, session: aiohttp.ClientSession, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        index = 0
        while loop.time() < deadline:
            phase = PHASES[index % len(PHASES)]
            index += 1
            self.current = phase.name
            await self.apply(session, phase)
            ends = min(deadline, loop.time() + self.seconds)
            if phase.then is not None:
                await asyncio.sleep(min(phase.then_after, max(0.0, ends - loop.time())))
                await self._endpoints(session, phase.then)
            await asyncio.sleep(max(0.0, ends - loop.time()))
        self.current = "calm"
        await self.apply(session, PHASES[0])

    async def apply(self, session: aiohttp.ClientSession, phase: Phase) -> None:
        """A clean simulator (both endpoints running), then `phase`'s own faults."""
        await self._put(session, "management", {**_CLEAN_MANAGEMENT, **(phase.management or {})})
        for name in (PRIMARY, FALLBACK):
            wanted = {**_CLEAN_ENDPOINT, **(phase.endpoints or {}).get(name, {})}
            wanted.setdefault("state", "running")
            await self._put(session, f"endpoints/{name}", wanted)

    async def _endpoints(self, session: aiohttp.ClientSession, settings: dict[str, dict[str, Any]]) -> None:
        for name, values in settings.items():
            await self._put(session, f"endpoints/{name}", values)

    async def _put(self, session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> None:
        try:
            async with session.put(f"{self.simulator_url}/_sim/{path}", json=body) as response:
                if response.status != 200:
                    self.failures += 1
                    logger.warning("PUT /_sim/%s: %s %s", path, response.status, await response.text())
        except aiohttp.ClientError as exc:
            self.failures += 1
            logger.warning("PUT /_sim/%s failed: %s", path, exc)
