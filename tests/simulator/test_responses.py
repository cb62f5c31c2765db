"""`/v1/responses` of a gpt-oss endpoint, as vLLM answers it: reasoning as an output item, usage."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response, ResponseCompletedEvent

from crazy_gary.clock import ManualClock
from crazy_gary.simulator import SimulatorServer

from ._helpers import COLD_START, PENDING, HubCall, calls, chat_body, openai_client, set_endpoint, sse_events

NAME = "gpt-oss-20b"
RESPONSES = f"/endpoints/{NAME}/v1/responses"
CHAT = f"/endpoints/{NAME}/v1/chat/completions"

MESSAGE_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
REASONING_EVENTS = [
    "response.output_item.added",
    "response.reasoning_part.added",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.reasoning_part.done",
    "response.output_item.done",
]


def body(given: Any = "What is 2+2?", **extra: Any) -> dict[str, Any]:
    return {"model": NAME, "input": given, **extra}


async def _events(client: httpx2.AsyncClient, request: dict[str, Any]) -> list[dict[str, Any]]:
    async with client.stream("POST", RESPONSES, json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([part async for part in response.aiter_text()])
    events = sse_events(text)
    payloads = [json.loads(data) for _, data in events]
    assert [name for name, _ in events] == [payload["type"] for payload in payloads]
    return payloads


def _collapsed(kinds: list[str]) -> list[str]:
    """The event kinds with runs of the same kind shown once."""
    return [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]


async def test_response_has_a_reasoning_item_a_message_and_usage(
    sim: SimulatorServer, client: httpx2.AsyncClient
) -> None:
    """The official client parses the response: reasoning item first, then the message, and usage."""
    await set_endpoint(client, NAME, state="running")
    async with openai_client(sim.url, NAME) as api:
        response = await api.responses.create(model=NAME, input="What is 2+2?")
    assert isinstance(response, Response)
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", NAME)
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.content is not None and reasoning.content[0].type == "reasoning_text"
    assert message.type == "message" and message.id.startswith("msg_")
    assert response.output_text.startswith(f"Simulated answer from {NAME}:")
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0 and usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == len(reasoning.content[0].text.split())
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_response_answers_as_chat_does(client: httpx2.AsyncClient) -> None:
    """The same input gets the same reasoning and text as a chat completion, and the same usage."""
    await set_endpoint(client, NAME, state="running")
    response = (await client.post(RESPONSES, json=body())).json()
    chat = (await client.post(CHAT, json=chat_body("What is 2+2?"))).json()
    reasoning, message = response["output"]
    assert reasoning["content"][0]["text"] == chat["choices"][0]["message"]["reasoning"]
    assert message["content"][0]["text"] == chat["choices"][0]["message"]["content"]
    assert message["content"][0]["annotations"] == []
    assert response["usage"]["input_tokens"] == chat["usage"]["prompt_tokens"]
    assert response["usage"]["output_tokens"] == chat["usage"]["completion_tokens"]
    again = (await client.post(RESPONSES, json=body([{"role": "user", "content": "What is 2+2?"}]))).json()
    assert again["output"][1]["content"] == message["content"]


async def test_instructions_are_part_of_the_prompt(client: httpx2.AsyncClient) -> None:
    """Instructions change the answer and are echoed in the response."""
    await set_endpoint(client, NAME, state="running")
    plain = (await client.post(RESPONSES, json=body())).json()
    instructed = (await client.post(RESPONSES, json=body(instructions="Answer in French."))).json()
    assert instructed["instructions"] == "Answer in French."
    assert instructed["output"][1]["content"] != plain["output"][1]["content"]
    assert instructed["usage"]["input_tokens"] > plain["usage"]["input_tokens"]


async def test_max_output_tokens_makes_an_incomplete_response(client: httpx2.AsyncClient) -> None:
    """A response cut by max_output_tokens is `incomplete`; all its tokens went to reasoning here."""
    await set_endpoint(client, NAME, state="running")
    response = (await client.post(RESPONSES, json=body(max_output_tokens=3))).json()
    assert (response["status"], response["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    assert [item["type"] for item in response["output"]] == ["reasoning"]
    assert (
        response["usage"]["output_tokens"]
        == response["usage"]["output_tokens_details"]["reasoning_tokens"]
        == 3
    )


async def test_stream_events_come_in_vllm_order(client: httpx2.AsyncClient) -> None:
    """A stream is numbered named events: created, the reasoning item, the message item, completed."""
    await set_endpoint(client, NAME, state="running")
    events = await _events(client, body(stream=True))
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    kinds = [event["type"] for event in events]
    assert _collapsed(kinds) == [
        "response.created",
        "response.in_progress",
        *REASONING_EVENTS,
        *MESSAGE_EVENTS,
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    final = events[-1]["response"]
    whole = (await client.post(RESPONSES, json=body())).json()
    assert [item["content"] for item in final["output"]] == [item["content"] for item in whole["output"]]
    assert final["usage"] == whole["usage"]
    reasoning = "".join(
        event["delta"] for event in events if event["type"] == "response.reasoning_text.delta"
    )
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert (reasoning, text) == (
        whole["output"][0]["content"][0]["text"],
        whole["output"][1]["content"][0]["text"],
    )
    assert (
        kinds.count("response.output_text.delta") + kinds.count("response.reasoning_text.delta")
        == (whole["usage"]["output_tokens"])
    )


async def test_the_openai_client_iterates_the_stream(
    sim: SimulatorServer, client: httpx2.AsyncClient
) -> None:
    """The official client turns the stream into typed events; the last carries the response and usage."""
    await set_endpoint(client, NAME, state="running")
    async with openai_client(sim.url, NAME) as api:
        stream = await api.responses.create(model=NAME, input="What is 2+2?", stream=True)
        events = [event async for event in stream]
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.output[0].type == "reasoning"
    assert completed.response.usage is not None and completed.response.usage.output_tokens > 0
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == completed.response.output_text


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"input": ""},
        {"input": []},
        {"input": ["not an item"]},
        {"input": "hi", "instructions": 3},
        {"input": "hi", "max_output_tokens": 0},
        {"input": "hi", "stream": 1},
    ],
)
async def test_bad_responses_bodies_are_400(client: httpx2.AsyncClient, request_body: dict[str, Any]) -> None:
    """Responses bodies vLLM would refuse get a 400 in vLLM's error shape."""
    await set_endpoint(client, NAME, state="running")
    response = await client.post(RESPONSES, json=request_body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "BadRequestError"


async def test_response_to_a_scaled_to_zero_endpoint_is_503_and_starts_it(
    sim: SimulatorServer, client: httpx2.AsyncClient, hub: HubCall, clock: ManualClock
) -> None:
    """A response request to a sleeping endpoint answers 503 and starts it; it is counted as inference."""
    async with openai_client(sim.url, NAME) as api:
        with pytest.raises(openai.InternalServerError) as refused:
            await api.responses.create(model=NAME, input="Hello")
        assert refused.value.status_code == 503
        assert (await hub("get_inference_endpoint", NAME)).status == "pending"
        await clock.advance(PENDING + COLD_START)
        assert (await api.responses.create(model=NAME, input="Hello")).status == "completed"
    counted = (await calls(client))[NAME]
    assert (counted["starts"], counted["inference"]) == (1, 2)
