"""HarmonyClient: the seed's example as written, and chat streamed and not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest

from crazy_gary import HarmonyClient
from crazy_gary.config import load_settings

SEED_EXAMPLE = textwrap.dedent(
    """
    import asyncio
    from crazy_gary import HarmonyClient

    async def main():
        async with HarmonyClient() as client:            # Settings from the environment
            status = await client.get_all_endpoint_status()   # same objects as the REST API
            ok = await client.wake_endpoint("120b")            # True once the wake is accepted
            results = await client.sleep_all_endpoints()       # {"120b": True, "20b": True}
            reply = await client.chat([{"role": "user", "content": "hi"}], model="120b")
            reply.content, reply.reasoning, reply.served_by, reply.fallback_reason, reply.usage
            print(sorted(status), ok, results, reply.served_by, bool(reply.content), reply.usage["total_tokens"] > 0)

    asyncio.run(main())
    """
)


def test_seed_example_runs_as_written() -> None:
    """The README's "Python" example runs against the embedded simulator and prints what it promises."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRAZY_GARY", "HF_", "HUGGINGFACE", "ENDPOINT_"))
    }
    env.update(
        CRAZY_GARY_SIM_COLD_START="0.5", CRAZY_GARY_POLL_FAST_INTERVAL="0.1", CRAZY_GARY_FALLBACK_WAIT="0.2"
    )
    result = subprocess.run(
        [sys.executable, "-c", SEED_EXAMPLE], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["['120b',", "'20b']"]
    assert "True {'120b': True, '20b': True}" in result.stdout
    assert result.stdout.strip().endswith("True True")


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HarmonyClient]:
    for name in ("HUGGINGFACE_API_KEY", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "CRAZY_GARY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRAZY_GARY_SIM_COLD_START", "0.3")
    monkeypatch.setenv("CRAZY_GARY_SIM_TOKENS_PER_SECOND", "10000")
    settings = load_settings(poll_fast_interval=0.1, fallback_wait=0.1)
    async with HarmonyClient(settings) as harmony:
        yield harmony


async def test_chat_streamed_matches_whole(client: HarmonyClient) -> None:
    """A streamed chat reassembles to the whole answer; both say who served them."""
    assert await client.wake_endpoint("120b")
    await client.manager.wait_for("120b", {client.manager.status("120b").status.RUNNING}, 10)
    reply = await client.chat([{"role": "user", "content": "tell me"}], model="120b")
    assert reply.served_by == "120b"
    assert reply.fallback_reason is None
    assert reply.reasoning
    parts = [
        chunk async for chunk in await client.chat([{"role": "user", "content": "tell me"}], stream=True)
    ]
    assert "".join(part.content for part in parts) == reply.content
    assert "".join(part.reasoning for part in parts) == reply.reasoning
    assert {part.served_by for part in parts} == {"120b"}
    assert client.manager.status("120b").in_flight == 0
    assert client.manager.status("120b").last_activity is not None


async def test_chat_falls_back_while_primary_starts(client: HarmonyClient) -> None:
    """With 20b running and 120b asleep, the reply comes from 20b with primary_sleeping."""
    await client.wake_endpoint("20b")
    await client.manager.wait_for("20b", {client.manager.status("20b").status.RUNNING}, 10)
    reply = await client.chat([{"role": "user", "content": "hi"}], model="gpt-oss-120b")
    assert reply.served_by == "20b"
    assert reply.fallback_reason == "primary_sleeping"
