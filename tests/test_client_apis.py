"""HarmonyClient's completions, Responses and embeddings, against the embedded simulator on a manual
clock: each says who served it and why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crazy_gary import HarmonyClient
from crazy_gary.clock import ManualClock
from crazy_gary.config import load_settings
from crazy_gary.core.status import EndpointStatus

T = TypeVar("T")


async def run(clock: ManualClock, awaitable: Awaitable[T], within: float = 120) -> T:
    """Await `awaitable` while the clock moves a second at a time."""
    task = asyncio.ensure_future(awaitable)
    for _ in range(int(within)):
        for _ in range(20):
            await clock.settle()
            if task.done():
                return task.result()
            await asyncio.sleep(0.001)
        await clock.advance(1)
    raise AssertionError(f"no answer within {within} s")


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[HarmonyClient, ManualClock]]:
    for name in ("HUGGINGFACE_API_KEY", "HF_BASE_URL_120B", "HF_BASE_URL_20B"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "crazy-gary.toml"
    config.write_text('[endpoints.bge]\nurl = "demo/bge-small-en"\n')
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    monkeypatch.setenv("CRAZY_GARY_SIM_TOKENS_PER_SECOND", "1000000")
    clock = ManualClock()
    async with HarmonyClient(load_settings(fallback_wait=5), clock=clock) as harmony:
        yield harmony, clock


async def running(harmony: HarmonyClient, clock: ManualClock, key: str) -> None:
    assert await harmony.wake_endpoint(key)
    await run(clock, harmony.manager.wait_for(key, {EndpointStatus.RUNNING}, 120))


async def test_complete_whole_and_streamed(client: tuple[HarmonyClient, ManualClock]) -> None:
    harmony, clock = client
    await running(harmony, clock, "120b")
    reply = await run(clock, harmony.complete("Once upon", model="120b"))
    assert (reply.served_by, reply.fallback_reason) == ("120b", None)
    assert reply.text and reply.usage["completion_tokens"] > 0

    async def pieces() -> list[Any]:
        return [piece async for piece in await harmony.complete("Once upon", stream=True)]

    streamed = await run(clock, pieces())
    assert "".join(piece.text for piece in streamed) == reply.text
    assert {piece.served_by for piece in streamed} == {"120b"}


async def test_respond_falls_back_with_reasoning_and_usage(client: tuple[HarmonyClient, ManualClock]) -> None:
    """With 120b asleep and 20b running, the Responses answer comes from 20b after the 5 s hold."""
    harmony, clock = client
    await running(harmony, clock, "20b")
    reply = await run(clock, harmony.respond("Why sleep?", model="120b"))
    assert (reply.served_by, reply.fallback_reason) == ("20b", "primary_sleeping")
    assert reply.output_text and reply.reasoning
    assert reply.usage["input_tokens"] > 0 and reply.usage["output_tokens"] > 0

    async def events() -> list[Any]:
        return [event async for event in await harmony.respond("Why sleep?", model="20b", stream=True)]

    streamed = await run(clock, events())
    assert streamed[-1].type == "response.completed"
    text = "".join(event.delta for event in streamed if event.type == "response.output_text.delta")
    assert text == reply.output_text


async def test_embed_wakes_the_embedding_endpoint(client: tuple[HarmonyClient, ManualClock]) -> None:
    harmony, clock = client
    await run(clock, harmony.manager.wait_for("bge", {EndpointStatus.SLEEPING}, 60))  # first read
    reply = await run(clock, harmony.embed(["a", "b"], model="bge"))
    assert (reply.served_by, reply.fallback_reason) == ("bge", None)
    assert [len(vector) for vector in reply.embeddings] == [384, 384]
    again = await run(clock, harmony.embed("a", model="bge-small-en", encoding_format="base64"))
    assert again.embeddings[0] == pytest.approx(reply.embeddings[0], abs=1e-6)
