"""The rest of the OpenAI API and each endpoint's own address, driven by the official `openai` and
`huggingface_hub` clients through the app and the simulator, both on real loopback sockets and on
one manual clock (a cold start takes no real time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from huggingface_hub import InferenceClient

from ._served import USER, Served, is_status, serve_with_simulator

MESSAGES = [{"role": "user", "content": "Why do large models sleep?"}]


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Served]:
    """crazy-gary with 120b → 20b and the embedding endpoint `bge` of the simulator, whose gpt-oss
    endpoints run (their models loaded) while `bge` sleeps."""
    async with serve_with_simulator(
        monkeypatch, tmp_path, '[endpoints.bge]\nurl = "demo/bge-small-en"\n'
    ) as it:
        yield it


async def test_completions_plain_and_streamed_through_the_openai_client(served: Served) -> None:
    client = served.openai()
    raw = await served.run(client.completions.with_raw_response.create(model="120b", prompt="Once upon"))
    completion = raw.parse()
    assert raw.headers["X-Crazy-Gary-Served-By"] == "120b"
    assert completion.object == "text_completion" and completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    async def streamed() -> str:
        stream = await client.completions.create(model="gpt-oss-120b", prompt="Once upon", stream=True)
        return "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])

    assert await served.run(streamed()) == completion.choices[0].text


async def test_responses_plain_and_streamed_carry_reasoning_and_usage(served: Served) -> None:
    client = served.openai()
    response = await served.run(client.responses.create(model="120b", input="Why do models sleep?"))
    assert response.output[0].type == "reasoning"
    assert response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0

    async def streamed() -> tuple[list[str], Any]:
        stream = await client.responses.create(model="120b", input="Why do models sleep?", stream=True)
        events = [event async for event in stream]
        return [event.type for event in events], events[-1]

    types, last = await served.run(streamed())
    assert types[0] == "response.created" and "response.reasoning_text.delta" in types
    assert last.type == "response.completed"
    assert last.response.output_text == response.output_text


async def test_a_held_responses_stream_falls_back_with_heartbeats(served: Served) -> None:
    """While 120b sleeps, a Responses stream is held (a comment line, no event the client would
    trip on), then the fallback's events arrive."""
    await served.sim_set("endpoints/gpt-oss-120b", state="scaledToZero")
    await served.until(lambda: is_status(served, "120b", "sleeping"))

    async def streamed() -> tuple[str, list[str]]:
        async with served.http.stream(
            "POST",
            f"{served.url}/v1/responses",
            json={"model": "120b", "input": "hi", "stream": True},
            headers=served.auth,
        ) as answer:
            return answer.headers["X-Crazy-Gary-Served-By"], [line async for line in answer.aiter_lines()]

    served_by, lines = await served.run(streamed())
    assert served_by == "pending"
    assert lines[0] == ": waiting for 120b"
    assert ": served-by 20b primary_sleeping" in lines
    assert "event: response.completed" in lines


async def test_a_held_responses_stream_nothing_can_serve_ends_with_an_error_event(served: Served) -> None:
    """A Responses stream held while both endpoints sleep: when both fail, the held stream (its
    200 and heartbeats already sent) ends at once with the API's own `error` event, `no_capacity`."""
    for name, key in (("gpt-oss-120b", "120b"), ("gpt-oss-20b", "20b")):
        await served.sim_set(f"endpoints/{name}", state="scaledToZero")
        await served.until(lambda key=key: is_status(served, key, "sleeping"))
    lines: list[str] = []

    async def streamed() -> int:
        async with served.http.stream(
            "POST",
            f"{served.url}/v1/responses",
            json={"model": "120b", "input": "hi", "stream": True},
            headers=served.auth,
        ) as answer:
            async for line in answer.aiter_lines():
                lines.append(line)
            return answer.status_code

    stream = asyncio.ensure_future(streamed())
    await served.until(lambda: _holding(lines))
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        await served.sim_set(f"endpoints/{name}", state="failed")
    failed_at = served.clock.now()
    assert await served.run(stream, within=60) == 200
    assert served.clock.now() - failed_at < 30  # as soon as both are read failed, not at the wake timeout
    assert lines[0] == ": waiting for 120b"
    events = [line for line in lines if line.startswith("event: ")]
    assert events == ["event: error"]
    error = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
    assert error["type"] == "error" and error["code"] == "no_capacity"


async def _holding(lines: list[str]) -> bool:
    return bool(lines)


async def test_a_responses_stream_nothing_can_serve_is_an_error_the_client_raises(served: Served) -> None:
    """Both endpoints failed before the request: a 503 in the JSON error shape, which `openai` raises."""
    await served.sim_set("endpoints/gpt-oss-120b", state="failed")
    await served.sim_set("endpoints/gpt-oss-20b", state="failed")
    for key in ("120b", "20b"):
        await served.until(lambda key=key: is_status(served, key, "error"))

    async def streamed() -> None:
        stream = await served.openai().responses.create(model="120b", input="hi", stream=True)
        async for _ in stream:
            pass

    with pytest.raises(openai.APIStatusError) as refused:
        await served.run(streamed())
    assert refused.value.status_code == 503


async def test_embeddings_of_a_scaled_to_zero_endpoint_wake_it_once(served: Served) -> None:
    """Two embedding requests at a sleeping `bge` wake it once and are answered once it runs."""
    client = served.openai()
    assert await served.status("bge") == "sleeping"
    first, second = await served.run(
        asyncio.gather(
            client.embeddings.create(model="bge", input=["cheap GPUs", "sleeping models"]),
            client.embeddings.create(model="BAAI/bge-small-en-v1.5", input="cheap GPUs"),
        )
    )
    assert [len(item.embedding) for item in first.data] == [384, 384]
    assert second.data[0].embedding == pytest.approx(first.data[0].embedding, abs=1e-6)
    assert first.data[0].embedding != first.data[1].embedding
    assert (await served.sim_calls("bge-small-en"))["starts"] == 1
    assert await served.status("bge") == "running"


async def test_an_endpoint_address_serves_huggingface_hubs_inference_client(served: Served) -> None:
    """`InferenceClient(model=".../endpoints/120b")` chats, streamed and not, through crazy-gary: it
    sends `model: "dummy"`, which becomes the endpoint's own name."""
    hf = InferenceClient(model=f"{served.url}/endpoints/120b", token=USER)
    whole = await served.run(asyncio.to_thread(hf.chat_completion, MESSAGES, max_tokens=400))
    assert whole.choices[0].message.content.startswith("Simulated answer from gpt-oss-120b")

    def streamed() -> str:
        chunks = hf.chat_completion(MESSAGES, max_tokens=400, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    assert await served.run(asyncio.to_thread(streamed)) == whole.choices[0].message.content


async def test_a_fallback_on_an_endpoint_address_keeps_the_path_and_query(served: Served) -> None:
    await served.sim_set("endpoints/gpt-oss-120b", state="scaledToZero")
    await served.until(lambda: is_status(served, "120b", "sleeping"))
    answer = await served.run(
        served.http.post(
            f"{served.url}/endpoints/120b/v1/completions?trace=1",
            json={"model": "anything", "prompt": "Once upon"},
            headers=served.auth,
        )
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Crazy-Gary-Served-By"] == "20b"
    assert answer.headers["X-Crazy-Gary-Fallback-Reason"] == "primary_sleeping"
    assert answer.json()["object"] == "text_completion" and answer.json()["model"] == "gpt-oss-20b"
    models = await served.run(served.http.get(f"{served.url}/endpoints/20b/v1/models", headers=served.auth))
    assert models.json()["data"][0]["id"] == "gpt-oss-20b"


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/120b/..%2F..%2F_sim/calls",
        "/endpoints/120b/%2e%2e/gpt-oss-20b/health",
        "/endpoints/120b/..;x/gpt-oss-20b/health",
        "/endpoints/120b//x",
    ],
)
async def test_path_escapes_are_refused_and_reach_nothing(served: Served, path: str) -> None:
    async def reached() -> dict[str, Any]:
        """What each endpoint's own routes were asked (health checks, which go on meanwhile, and
        management calls such as the idle timer's set-up at start, left out)."""
        calls = (await served.http.get(f"{served.sim}/_sim/calls")).json()
        return {name: (c["inference"], c["starts"]) for name, c in calls.items() if name != "_list"}

    before = await reached()
    answer = await served.http.get(served.url + path, headers=served.auth)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"
    assert await reached() == before


async def test_models_say_what_each_endpoint_serves(served: Served) -> None:
    models = {model.id: model for model in (await served.run(served.openai().models.list())).data}
    assert set(models) == {"120b", "20b", "bge"}
    assert models["bge"].model_extra is not None
    assert models["bge"].model_extra["apis"] == ["embeddings"]
    assert models["120b"].model_extra is not None
    assert models["120b"].model_extra["apis"] == ["chat", "completions", "responses"]
    assert models["120b"].model_extra["address"] == "/endpoints/120b"


async def test_the_openapi_schema_documents_every_inference_route(served: Served) -> None:
    """Every API of the gateway and an endpoint's address, each method of it, are in `/openapi.json`."""
    paths = (await served.http.get(f"{served.url}/openapi.json")).json()["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"):
        assert paths[path]["post"]["tags"] == ["gateway"], path
        assert "requestBody" in paths[path]["post"]
    address = paths["/endpoints/{key}/{path}"]
    assert {"get", "post", "put", "delete"} <= set(address)
    assert [p["name"] for p in address["post"]["parameters"]] == ["key", "path"]
