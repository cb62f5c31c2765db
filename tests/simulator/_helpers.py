"""Constants and small helpers shared by the simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from openai import AsyncOpenAI

TOKEN = "hf_simulator"
NAMESPACE = "demo"
COLD_START = 20.0
PENDING = 1.0  # every start waits this long in `pending` before its cold start, by default

HubCall = Callable[..., Awaitable[Any]]


async def set_endpoint(client: httpx2.AsyncClient, name: str, **settings: Any) -> dict[str, Any]:
    """Change an endpoint through the control API."""
    response = await client.put(f"/_sim/endpoints/{name}", json=settings)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def calls(client: httpx2.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sim/calls")
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Let the loop run (for real, briefly) until `condition` holds, e.g. a request is being held."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.002)


def chat_body(prompt: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "tgi", "messages": [{"role": "user", "content": prompt}], **extra}


def openai_client(sim_url: str, endpoint: str) -> AsyncOpenAI:
    """The official OpenAI client pointed at one endpoint's address; no retries, so a 503 shows at once."""
    return AsyncOpenAI(base_url=f"{sim_url}/endpoints/{endpoint}/v1", api_key=TOKEN, max_retries=0)


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """A stream's events as (event name or None, data) pairs."""
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event"), fields["data"]))
    return events
