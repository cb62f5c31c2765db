"""The soak test's mixed traffic: chat, streams, the other OpenAI routes, endpoint addresses and
status reads, sent by a bounded number of workers over kept-alive connections (aiohttp)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

from bench._soak_outcomes import Outcome, Tally, classify_answer, classify_failure

__all__ = ["KINDS", "Kind", "Traffic"]

PROMPTS = ("hello", "a haiku about GPUs", "why is the sky blue?", "count to five", "name three rivers")
MAX_TOKENS = 24
REFUSED_PAUSE = 0.05  # seconds a worker waits after a refused connection (serve is down)


@dataclass(frozen=True)
class Kind:
    """One kind of request: its route, body, key role and whether it streams."""

    name: str
    weight: int
    method: str
    path: str
    role: str = "user"
    api: str = "chat"
    model: str | None = "120b"
    stream: bool = False

    def body(self, rng: random.Random) -> dict[str, Any] | None:
        if self.method == "GET":
            return None
        prompt = rng.choice(PROMPTS)
        body: dict[str, Any] = {"max_tokens": MAX_TOKENS, "stream": self.stream}
        if self.model is not None:
            body["model"] = self.model
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        elif self.api == "completions":
            body["prompt"] = prompt
        else:  # responses
            body = {
                "model": self.model,
                "input": prompt,
                "max_output_tokens": MAX_TOKENS,
                "stream": self.stream,
            }
        return body


KINDS = (
    Kind("chat 120b", 30, "POST", "/v1/chat/completions"),
    Kind("stream 120b", 20, "POST", "/v1/chat/completions", stream=True),
    Kind("chat 20b", 10, "POST", "/v1/chat/completions", model="20b"),
    Kind("endpoint address 120b", 10, "POST", "/endpoints/120b/v1/chat/completions", model="tgi"),
    Kind("endpoint address 20b stream", 5, "POST", "/endpoints/20b/v1/chat/completions", stream=True),
    Kind("completions 120b", 5, "POST", "/v1/completions", api="completions"),
    Kind("responses 120b stream", 5, "POST", "/v1/responses", api="responses", stream=True),
    Kind("status", 5, "GET", "/api/endpoints/status", role="viewer", model=None),
)


class Traffic:
    """`workers` loops sending requests of `KINDS` (by weight) to `base_url` until `deadline`
    (a `time.monotonic()` reading), each outcome recorded in `tally`."""

    def __init__(
        self, base_url: str, keys: dict[str, str], tally: Tally, *, seed: int, timeout: float = 90.0
    ) -> None:
        self.base_url = base_url
        self.keys = keys
        self.tally = tally
        self.rng = random.Random(seed)
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def run(self, workers: int, deadline: float) -> None:
        connector = aiohttp.TCPConnector(limit=workers, force_close=False)
        session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, trace_configs=[_connection_trace()]
        )
        async with session, asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self._work(session, deadline))

    async def _work(self, session: aiohttp.ClientSession, deadline: float) -> None:
        weights = [kind.weight for kind in KINDS]
        while time.monotonic() < deadline:
            kind = self.rng.choices(KINDS, weights)[0]
            outcome = await self.send(session, kind)
            if outcome is Outcome.REFUSED:
                await asyncio.sleep(REFUSED_PAUSE)

    async def send(self, session: aiohttp.ClientSession, kind: Kind) -> Outcome:
        """Send one request of `kind`, record its outcome and return it."""
        started = time.perf_counter()
        outcome, reason = await self._exchange(session, kind)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.tally.record(kind.name, outcome, reason, elapsed_ms, at=time.monotonic())
        return outcome

    async def _exchange(self, session: aiohttp.ClientSession, kind: Kind) -> tuple[Outcome, str]:
        headers = {"Authorization": f"Bearer {self.keys[kind.role]}"}
        connection: dict[str, bool] = {}
        try:
            async with session.request(
                kind.method,
                self.base_url + kind.path,
                json=kind.body(self.rng),
                headers=headers,
                trace_request_ctx=connection,
            ) as response:
                body = await response.read()
                return classify_answer(response.status, response.headers, body, stream=kind.stream)
        except aiohttp.ClientConnectorError as exc:
            return classify_failure(exc.os_error, sent=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome, reason = classify_failure(exc, sent=True)
            where = "a new connection" if connection.get("new") else "a kept-alive connection"
            return outcome, f"{reason} on {where}"


def _connection_trace() -> aiohttp.TraceConfig:
    """Notes in each request's trace context whether it went out on a new connection."""
    trace = aiohttp.TraceConfig()

    async def created(session: object, context: SimpleNamespace, params: object) -> None:
        if isinstance(context.trace_request_ctx, dict):
            context.trace_request_ctx["new"] = True

    trace.on_connection_create_end.append(created)
    return trace
