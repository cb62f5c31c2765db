"""Each endpoint's vLLM-style address behind the simulated HF proxy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import COLD_START, PENDING, TOKEN, HubCall, calls, chat_body, set_endpoint, until

CHAT = "/endpoints/gpt-oss-20b/v1/chat/completions"


async def _stream_events(client: httpx2.AsyncClient, body: dict[str, Any]) -> list[str]:
    async with client.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([part async for part in response.aiter_text()])
    assert text.endswith("data: [DONE]\n\n")
    events = text.split("\n\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


async def test_chat_to_a_scaled_to_zero_endpoint_is_503_and_starts_it(
    client: httpx2.AsyncClient, hub: HubCall
) -> None:
    """A request to a sleeping endpoint answers 503 at once and begins its start (pending first)."""
    response = await client.post(CHAT, json=chat_body())
    assert response.status_code == 503
    assert "error" in response.json()
    assert (await hub("get_inference_endpoint", "gpt-oss-20b")).status == "pending"
    second = await client.post(CHAT, json=chat_body())
    assert second.status_code == 503
    counted = (await calls(client))["gpt-oss-20b"]
    assert (counted["starts"], counted["inference"]) == (1, 2)


async def test_scale_up_timeout_holds_the_request_until_running(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """X-Scale-Up-Timeout holds a request through the cold start, then answers it normally."""
    headers = {"X-Scale-Up-Timeout": "60"}
    held = asyncio.ensure_future(client.post(CHAT, json=chat_body(), headers=headers))
    await until(lambda: clock.sleepers > 0)
    await clock.advance(PENDING + COLD_START - 1)
    assert not held.done()
    await clock.advance(1)
    response = await held
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert (await calls(client))["gpt-oss-20b"]["starts"] == 1


async def test_scale_up_timeout_gives_up_with_503(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """A held request whose seconds pass before the endpoint runs gets 503."""
    held = asyncio.ensure_future(
        client.get("/endpoints/gpt-oss-20b/health", headers={"X-Scale-Up-Timeout": "5"})
    )
    await until(lambda: clock.sleepers > 0)
    await clock.advance(5)
    assert (await held).status_code == 503


async def test_held_request_is_released_by_a_state_change(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """A held request is answered as soon as the endpoint is set running, without clock moves."""
    held = asyncio.ensure_future(
        client.get("/endpoints/gpt-oss-20b/v1/models", headers={"X-Scale-Up-Timeout": "60"})
    )
    await until(lambda: clock.sleepers > 0)
    await set_endpoint(client, "gpt-oss-20b", state="running")
    assert (await held).status_code == 200


async def test_bad_scale_up_timeout_is_400(client: httpx2.AsyncClient) -> None:
    """An X-Scale-Up-Timeout that is not a number of seconds is a 400 JSON error."""
    response = await client.get("/endpoints/gpt-oss-20b/health", headers={"X-Scale-Up-Timeout": "soon"})
    assert response.status_code == 400
    assert "error" in response.json()


async def test_paused_endpoint_says_invalid_state(client: httpx2.AsyncClient, hub: HubCall) -> None:
    """A paused endpoint answers 400 "Invalid state", even to a request willing to wait."""
    await hub("pause_inference_endpoint", "gpt-oss-20b")
    response = await client.post(CHAT, json=chat_body(), headers={"X-Scale-Up-Timeout": "60"})
    assert response.status_code == 400
    assert "Invalid state" in response.text
    assert (await calls(client))["gpt-oss-20b"]["starts"] == 0


@pytest.mark.parametrize("state", ["failed", "updateFailed"])
async def test_failed_endpoint_is_503(client: httpx2.AsyncClient, state: str) -> None:
    """A failed endpoint answers 503 and starts nothing."""
    await set_endpoint(client, "gpt-oss-20b", state=state)
    response = await client.post(CHAT, json=chat_body())
    assert response.status_code == 503
    assert (await calls(client))["gpt-oss-20b"]["starts"] == 0


async def test_chat_is_deterministic_and_carries_reasoning_and_usage(client: httpx2.AsyncClient) -> None:
    """The same prompt gets the same answer, with reasoning and usage, in vLLM's shape."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    first = (await client.post(CHAT, json=chat_body("What is 2+2?", reasoning_effort="low"))).json()
    again = (await client.post(CHAT, json=chat_body("What is 2+2?"))).json()
    other = (await client.post(CHAT, json=chat_body("Something else"))).json()
    assert first["object"] == "chat.completion"
    assert first["id"].startswith("chatcmpl-")
    assert first["model"] == "gpt-oss-20b"
    message = first["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] and message["reasoning"]
    assert first["choices"][0]["finish_reason"] == "stop"
    assert again["choices"][0]["message"] == message
    assert other["choices"][0]["message"]["content"] != message["content"]
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0


async def test_answers_differ_between_endpoints(client: httpx2.AsyncClient) -> None:
    """The endpoint's name is part of what the answer is derived from."""
    for name in ("gpt-oss-20b", "gpt-oss-120b"):
        await set_endpoint(client, name, state="running")
    small = (await client.post(CHAT, json=chat_body())).json()
    big = (await client.post("/endpoints/gpt-oss-120b/v1/chat/completions", json=chat_body())).json()
    assert small["choices"][0]["message"]["content"] != big["choices"][0]["message"]["content"]


async def test_max_tokens_is_honoured(client: httpx2.AsyncClient) -> None:
    """max_tokens caps the completion tokens; a cut answer finishes with "length"."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    answer = (await client.post(CHAT, json=chat_body(max_tokens=3))).json()
    assert answer["usage"]["completion_tokens"] == 3
    assert answer["choices"][0]["finish_reason"] == "length"


async def test_stream_format(client: httpx2.AsyncClient) -> None:
    """A stream is SSE chunks: role first, reasoning then content deltas, stop, then [DONE]."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    events = await _stream_events(client, chat_body(stream=True))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    kinds = [next(iter(chunk["choices"][0]["delta"])) for chunk in chunks[1:]]
    assert kinds == sorted(kinds, key=lambda kind: kind != "reasoning")  # reasoning before content
    assert {"reasoning", "content"} <= set(kinds)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)
    whole = (await client.post(CHAT, json=chat_body())).json()["choices"][0]["message"]
    streamed = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert streamed == whole["content"]


async def test_stream_include_usage_adds_a_usage_chunk(client: httpx2.AsyncClient) -> None:
    """stream_options.include_usage adds one chunk with empty choices and the usage before [DONE]."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    body = chat_body(stream=True, stream_options={"include_usage": True})
    events = await _stream_events(client, body)
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    content_chunks = [json.loads(event) for event in events[1:-2]]
    assert usage["completion_tokens"] == len(content_chunks)


async def test_tokens_are_paced_by_the_clock(clock: ManualClock) -> None:
    """At 10 tokens a second, an answer of n tokens arrives after n/10 seconds of clock time."""
    config = SimulatorConfig(tokens_per_second=10, initial_state="running")
    async with (
        SimulatorServer(config, clock=clock) as sim,
        httpx2.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        pending = asyncio.ensure_future(client.post(CHAT, json=chat_body(max_tokens=5)))
        await until(lambda: clock.sleepers > 0)
        await clock.advance(0.4)
        assert not pending.done()
        await clock.advance(0.1)
        response = await pending
        assert response.json()["usage"]["completion_tokens"] == 5


async def test_models_and_health(client: httpx2.AsyncClient) -> None:
    """/v1/models names the endpoint; /health answers 200 once running; neither counts as inference."""
    await set_endpoint(client, "gpt-oss-120b", state="running")
    models = (await client.get("/endpoints/gpt-oss-120b/v1/models")).json()
    assert models["object"] == "list"
    assert models["data"][0]["id"] == "gpt-oss-120b"
    assert models["data"][0]["owned_by"] == "simulator"
    assert (await client.get("/endpoints/gpt-oss-120b/health")).status_code == 200
    assert (await calls(client))["gpt-oss-120b"]["inference"] == 0


async def test_inference_needs_the_token(client: httpx2.AsyncClient) -> None:
    """Inference routes answer 401 to a wrong or missing token, before anything else."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    wrong = await client.post(CHAT, json=chat_body(), headers={"Authorization": "Bearer hf_wrong"})
    assert wrong.status_code == 401
    missing = await client.get("/endpoints/gpt-oss-20b/health", headers={"Authorization": ""})
    assert missing.status_code == 401
    assert (await calls(client))["gpt-oss-20b"]["inference"] == 0


@pytest.mark.parametrize(
    "body",
    [b"{oops", b"[]", b'{"messages": []}', b'{"messages": [{"content": "no role"}]}', b'{"messages": "hi"}'],
)
async def test_bad_chat_bodies_are_400(client: httpx2.AsyncClient, body: bytes) -> None:
    """Malformed or unusable chat bodies get a 400 JSON error."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    response = await client.post(CHAT, content=body)
    assert response.status_code == 400
    assert "error" in response.json()


async def test_unknown_endpoint_is_404(client: httpx2.AsyncClient) -> None:
    """An address under /endpoints that names no endpoint is a 404 JSON error."""
    response = await client.post("/endpoints/nope/v1/chat/completions", json=chat_body())
    assert response.status_code == 404
    assert "error" in response.json()


async def test_error_rate_answers_the_error_status(client: httpx2.AsyncClient) -> None:
    """With error_rate 1 every chat answers error_status, and is still counted."""
    await set_endpoint(client, "gpt-oss-20b", state="running", error_rate=1, error_status=502)
    response = await client.post(CHAT, json=chat_body())
    assert response.status_code == 502
    assert "error" in response.json()
    assert (await calls(client))["gpt-oss-20b"]["inference"] == 1


async def test_disconnect_rate_drops_the_connection(client: httpx2.AsyncClient) -> None:
    """With disconnect_rate 1 the client sees a dropped connection, not an HTTP answer."""
    await set_endpoint(client, "gpt-oss-20b", state="running", disconnect_rate=1)
    with pytest.raises(httpx2.TransportError):
        await client.post(CHAT, json=chat_body())
    await set_endpoint(client, "gpt-oss-20b", disconnect_rate=0)
    assert (await client.post(CHAT, json=chat_body())).status_code == 200


async def test_latency_waits_on_the_clock(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    """latency_ms delays an answer by that much clock time."""
    await set_endpoint(client, "gpt-oss-20b", state="running", latency_ms=250)
    pending = asyncio.ensure_future(client.post(CHAT, json=chat_body()))
    await until(lambda: clock.sleepers > 0)
    assert not pending.done()
    await clock.advance(0.25)
    assert (await pending).status_code == 200
