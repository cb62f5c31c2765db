"""`bge-small-en` and `/v1/embeddings`; which endpoints serve which of vLLM's OpenAI APIs."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import httpx2
import openai
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

from ._helpers import COLD_START, PENDING, HubCall, calls, chat_body, openai_client, set_endpoint

BGE = "bge-small-en"
EMBEDDINGS = f"/endpoints/{BGE}/v1/embeddings"


def body(given: Any = "hello world", **extra: Any) -> dict[str, Any]:
    return {"model": BGE, "input": given, **extra}


async def test_bge_is_seeded_as_a_sleeping_embedding_model(hub: HubCall) -> None:
    """The namespace holds bge-small-en: BAAI/bge-small-en-v1.5 on aws nvidia-t4 x1, scaled to zero."""
    endpoint = await hub("get_inference_endpoint", BGE)
    assert endpoint.repository == "BAAI/bge-small-en-v1.5"
    assert endpoint.status == "scaledToZero"
    raw = endpoint.raw
    assert raw["model"]["task"] == "sentence-embeddings"
    assert (raw["provider"]["vendor"], raw["compute"]["instanceType"], raw["compute"]["instanceSize"]) == (
        "aws",
        "nvidia-t4",
        "x1",
    )
    assert raw["compute"]["id"] == "aws-us-east-1-nvidia-t4-x1"


async def test_bge_starts_scaled_to_zero_whatever_the_initial_state(clock: ManualClock) -> None:
    """An initial state of running applies to the gpt-oss endpoints; bge-small-en still sleeps."""
    config = SimulatorConfig(initial_state="running")
    async with (
        SimulatorServer(config, clock=clock) as sim,
        httpx2.AsyncClient(base_url=sim.url) as http,
    ):
        states = {
            name: (await http.get(f"/_sim/endpoints/{name}")).json()["state"] for name in ("gpt-oss-20b", BGE)
        }
        assert states == {"gpt-oss-20b": "running", BGE: "scaledToZero"}
        await http.put(f"/_sim/endpoints/{BGE}", json={"state": "running"})
        await http.post("/_sim/reset")
        assert (await http.get(f"/_sim/endpoints/{BGE}")).json()["state"] == "scaledToZero"


async def test_an_embedding_request_starts_bge(
    client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """Embeddings to the sleeping endpoint answer 503 while it starts, then 200; each is inference."""
    assert (await client.post(EMBEDDINGS, json=body())).status_code == 503
    assert (await hub("get_inference_endpoint", BGE)).status == "pending"
    await clock.advance(PENDING)
    assert (await client.post(EMBEDDINGS, json=body())).status_code == 503
    await clock.advance(COLD_START)
    assert (await client.post(EMBEDDINGS, json=body())).status_code == 200
    counted = (await calls(client))[BGE]
    assert (counted["starts"], counted["inference"]) == (1, 3)


async def test_the_openai_client_gets_384_deterministic_unit_floats(
    sim: SimulatorServer, client: httpx2.AsyncClient
) -> None:
    """The official client (which asks for base64 by default) gets 384 floats per input, the same for
    the same input, different for another, of unit length."""
    await set_endpoint(client, BGE, state="running")
    async with openai_client(sim.url, BGE) as api:
        first = await api.embeddings.create(model=BGE, input=["alpha", "beta"])
        again = await api.embeddings.create(model=BGE, input="alpha")
        floats = await api.embeddings.create(model=BGE, input=["alpha", "beta"], encoding_format="float")
    alpha, beta = (item.embedding for item in first.data)
    assert [item.index for item in first.data] == [0, 1]
    assert len(alpha) == len(beta) == 384
    assert alpha == again.data[0].embedding == floats.data[0].embedding
    assert alpha != beta
    assert math.isclose(math.fsum(value * value for value in alpha), 1.0, rel_tol=1e-5)
    assert first.model == BGE
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0


async def test_base64_is_little_endian_float32(client: httpx2.AsyncClient) -> None:
    """encoding_format base64 sends the same vector as float, packed as little-endian float32."""
    await set_endpoint(client, BGE, state="running")
    floats = (await client.post(EMBEDDINGS, json=body())).json()
    packed = (await client.post(EMBEDDINGS, json=body(encoding_format="base64"))).json()
    assert floats["object"] == "list"
    assert floats["data"][0]["object"] == "embedding"
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert len(raw) == 384 * 4
    assert list(struct.unpack("<384f", raw)) == floats["data"][0]["embedding"]


async def test_token_inputs_are_embedded(client: httpx2.AsyncClient) -> None:
    """Token ids, or a list of token-id lists, are inputs too: one vector each, counted as tokens."""
    await set_endpoint(client, BGE, state="running")
    one = (await client.post(EMBEDDINGS, json=body([101, 7592, 102]))).json()
    two = (await client.post(EMBEDDINGS, json=body([[101, 7592, 102], [101, 102]]))).json()
    assert len(one["data"]) == 1 and len(two["data"]) == 2
    assert two["data"][0]["embedding"] == one["data"][0]["embedding"]
    assert (one["usage"]["prompt_tokens"], two["usage"]["prompt_tokens"]) == (3, 5)


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"input": ""},
        {"input": []},
        {"input": ["fine", 7]},
        {"input": "hi", "encoding_format": "bytes"},
        {"input": "hi", "dimensions": 128},
    ],
)
async def test_bad_embedding_bodies_are_400(client: httpx2.AsyncClient, request_body: dict[str, Any]) -> None:
    """Embedding bodies vLLM would refuse get a 400 in vLLM's error shape."""
    await set_endpoint(client, BGE, state="running")
    response = await client.post(EMBEDDINGS, json=request_body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "BadRequestError"


@pytest.mark.parametrize(
    ("endpoint", "path", "api"),
    [
        ("gpt-oss-20b", "embeddings", "Embeddings API"),
        (BGE, "chat/completions", "Chat Completions API"),
        (BGE, "completions", "Completions API"),
        (BGE, "responses", "Responses API"),
    ],
)
async def test_an_api_the_model_does_not_serve_is_404(
    client: httpx2.AsyncClient, endpoint: str, path: str, api: str
) -> None:
    """A text model asked for embeddings, or an embedding model asked for text, answers 404 as vLLM words it."""
    await set_endpoint(client, endpoint, state="running")
    request = {"model": endpoint, "input": "hi", "prompt": "hi", **chat_body()}
    response = await client.post(f"/endpoints/{endpoint}/v1/{path}", json=request)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": f"The model does not support {api}",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        }
    }
    assert (await calls(client))[endpoint]["inference"] == 1


async def test_the_openai_client_sees_a_not_found_error(
    sim: SimulatorServer, client: httpx2.AsyncClient
) -> None:
    """To the official client, chat to an embedding model is a NotFoundError."""
    await set_endpoint(client, BGE, state="running")
    async with openai_client(sim.url, BGE) as api:
        with pytest.raises(openai.NotFoundError, match="does not support Chat Completions API"):
            await api.chat.completions.create(model=BGE, messages=[{"role": "user", "content": "hi"}])


async def test_a_wrong_api_still_starts_a_sleeping_endpoint(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    """HF's proxy answers before the model does: chat to a sleeping bge-small-en is 503 and starts it."""
    chat = f"/endpoints/{BGE}/v1/chat/completions"
    assert (await client.post(chat, json=chat_body())).status_code == 503
    await clock.advance(PENDING + COLD_START)
    assert (await client.post(chat, json=chat_body())).status_code == 404
    assert (await calls(client))[BGE]["starts"] == 1


async def test_bge_needs_the_token(client: httpx2.AsyncClient) -> None:
    """Embeddings answer 401 to a wrong token, before anything else."""
    response = await client.post(EMBEDDINGS, json=body(), headers={"Authorization": "Bearer hf_wrong"})
    assert response.status_code == 401
    assert (await calls(client))[BGE]["inference"] == 0
