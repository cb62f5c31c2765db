"""`/v1/completions` of a gpt-oss endpoint, as vLLM answers it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import (
    COLD_START,
    PENDING,
    TOKEN,
    HubCall,
    calls,
    openai_client,
    set_endpoint,
    sse_events,
    until,
)

NAME = "gpt-oss-20b"
COMPLETIONS = f"/endpoints/{NAME}/v1/completions"


def body(prompt: Any = "Once upon a time", **extra: Any) -> dict[str, Any]:
    return {"model": NAME, "prompt": prompt, **extra}


async def _chunks(client: httpx2.AsyncClient, request: dict[str, Any]) -> list[dict[str, Any]]:
    async with client.stream("POST", COMPLETIONS, json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([part async for part in response.aiter_text()])
    events = sse_events(text)
    assert events[-1] == (None, "[DONE]")
    assert all(name is None for name, _ in events)
    return [json.loads(data) for _, data in events[:-1]]


async def test_completion_is_deterministic_plain_text_with_usage(client: httpx2.AsyncClient) -> None:
    """A completion is a `text_completion` of plain text (no reasoning), the same for the same prompt."""
    await set_endpoint(client, NAME, state="running")
    first = (await client.post(COMPLETIONS, json=body())).json()
    again = (await client.post(COMPLETIONS, json=body())).json()
    other = (await client.post(COMPLETIONS, json=body("Something else"))).json()
    assert first["object"] == "text_completion"
    assert first["id"].startswith("cmpl-")
    assert first["model"] == NAME
    choice = first["choices"][0]
    assert set(choice) == {"index", "text", "logprobs", "finish_reason", "stop_reason"}
    assert (choice["index"], choice["logprobs"], choice["finish_reason"]) == (0, None, "stop")
    assert choice["text"].startswith(" ")  # it continues the prompt
    assert again["choices"][0]["text"] == choice["text"]
    assert other["choices"][0]["text"] != choice["text"]
    usage = first["usage"]
    assert usage["prompt_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_each_prompt_gets_a_choice(client: httpx2.AsyncClient) -> None:
    """A list of prompts, texts or token ids, gets one choice each, in order; usage adds them up."""
    await set_endpoint(client, NAME, state="running")
    answer = (await client.post(COMPLETIONS, json=body(["One", [101, 2023, 102]], max_tokens=2))).json()
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    assert answer["usage"]["prompt_tokens"] == 1 + 3
    assert answer["usage"]["completion_tokens"] == 4
    tokens = (await client.post(COMPLETIONS, json=body([101, 2023, 102], max_tokens=2))).json()
    assert len(tokens["choices"]) == 1
    assert tokens["choices"][0]["text"] == answer["choices"][1]["text"]


async def test_max_tokens_cuts_the_text(client: httpx2.AsyncClient) -> None:
    """max_tokens caps the completion tokens; a cut text finishes with "length"."""
    await set_endpoint(client, NAME, state="running")
    answer = (await client.post(COMPLETIONS, json=body(max_tokens=3))).json()
    assert answer["usage"]["completion_tokens"] == 3
    assert answer["choices"][0]["finish_reason"] == "length"


async def test_stream_sends_text_deltas_then_done(client: httpx2.AsyncClient) -> None:
    """A stream is `text_completion` chunks of one token each, the last with its finish reason, then [DONE]."""
    await set_endpoint(client, NAME, state="running")
    chunks = await _chunks(client, body(stream=True))
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all("usage" not in chunk for chunk in chunks)
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks][-2:] == [None, "stop"]
    whole = (await client.post(COMPLETIONS, json=body())).json()
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == whole["choices"][0]["text"]
    assert len(chunks) == whole["usage"]["completion_tokens"]


async def test_stream_include_usage_adds_a_usage_chunk(client: httpx2.AsyncClient) -> None:
    """stream_options.include_usage adds one chunk with empty choices and the usage before [DONE]."""
    await set_endpoint(client, NAME, state="running")
    chunks = await _chunks(client, body(stream=True, stream_options={"include_usage": True}, max_tokens=4))
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(chunks) - 1 == 4


async def test_the_openai_client_reads_completions(sim: SimulatorServer, client: httpx2.AsyncClient) -> None:
    """The official client parses a completion and iterates its stream."""
    await set_endpoint(client, NAME, state="running")
    async with openai_client(sim.url, NAME) as api:
        completion = await api.completions.create(model=NAME, prompt="Once upon a time")
        stream = await api.completions.create(
            model=NAME, prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert completion.object == "text_completion"
    assert completion.usage is not None and completion.usage.prompt_tokens == 4
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == completion.choices[0].text
    assert chunks[-1].usage == completion.usage


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"prompt": ""},
        {"prompt": []},
        {"prompt": 7},
        {"prompt": ["ok", 3]},
        {"prompt": "hi", "max_tokens": 0},
        {"prompt": "hi", "stream": "yes"},
    ],
)
async def test_bad_completion_bodies_are_400(
    client: httpx2.AsyncClient, request_body: dict[str, Any]
) -> None:
    """Completion bodies vLLM would refuse get a 400 in vLLM's error shape."""
    await set_endpoint(client, NAME, state="running")
    response = await client.post(COMPLETIONS, json=request_body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "BadRequestError"


async def test_completion_to_a_scaled_to_zero_endpoint_is_503_and_starts_it(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock, sim: SimulatorServer
) -> None:
    """A completion to a sleeping endpoint answers 503 and starts it; it is counted as inference."""
    async with openai_client(sim.url, NAME) as api:
        with pytest.raises(openai.InternalServerError) as refused:
            await api.completions.create(model=NAME, prompt="Hello")
    assert refused.value.status_code == 503
    assert (await hub("get_inference_endpoint", NAME)).status == "pending"
    await clock.advance(PENDING + COLD_START)
    assert (await client.post(COMPLETIONS, json=body())).status_code == 200
    counted = (await calls(client))[NAME]
    assert (counted["starts"], counted["inference"]) == (1, 2)


async def test_completion_faults_apply(client: httpx2.AsyncClient) -> None:
    """error_rate answers a completion with error_status, as it does chat."""
    await set_endpoint(client, NAME, state="running", error_rate=1, error_status=502)
    response = await client.post(COMPLETIONS, json=body())
    assert response.status_code == 502
    assert "error" in response.json()


async def test_completion_tokens_are_paced_by_the_clock(clock: ManualClock) -> None:
    """At 10 tokens a second, a completion of 5 tokens arrives after half a second of clock time."""
    config = SimulatorConfig(tokens_per_second=10, initial_state="running")
    async with (
        SimulatorServer(config, clock=clock) as sim,
        httpx2.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        pending = asyncio.ensure_future(http.post(COMPLETIONS, json=body(max_tokens=5)))
        await until(lambda: clock.sleepers > 0)
        await clock.advance(0.4)
        assert not pending.done()
        await clock.advance(0.1)
        assert (await pending).json()["usage"]["completion_tokens"] == 5
