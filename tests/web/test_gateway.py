"""The gateway through the app, on the manual clock, with the management API and the inference port
in memory (`create_app(..., inference=...)`): held streams, who served, a stream cut midway."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.web import create_app

from ..conftest import serve_app
from ..core.fakes import FakeAnswer, FakeInference, FakeManagement

USER = "user-key-123456"
T = TypeVar("T")
SSE = {"content-type": "text/event-stream"}
CHUNKS = (b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', b"data: [DONE]\n\n")


@dataclass
class Gateway:
    http: httpx2.AsyncClient
    clock: ManualClock
    inference: FakeInference

    async def stream(
        self, model: str, path: str = "/v1/chat/completions", **fields: Any
    ) -> tuple[httpx2.Response, list[str]]:
        """One stream read to its end while the clock moves a second at a time (a chat, unless
        `fields` say what else the body holds)."""
        body = {
            "model": model,
            **(fields or {"messages": [{"role": "user", "content": "hi"}]}),
            "stream": True,
        }

        async def read() -> tuple[httpx2.Response, list[str]]:
            headers = {"Authorization": f"Bearer {USER}"}
            async with self.http.stream("POST", path, json=body, headers=headers) as answer:
                return answer, [line async for line in answer.aiter_lines() if line]

        return await self.run(read())

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` while the clock moves a second at a time, 30 s at most."""
        task = asyncio.ensure_future(awaitable)
        for _ in range(30):
            for _ in range(5):
                await self.clock.settle()  # turns of the loop, for the loopback's bytes
                if task.done():
                    return task.result()
                await asyncio.sleep(0.001)
            await self.clock.advance(1)
        return await task

    async def in_flight(self, key: str) -> int:
        status = await self.http.get(
            f"/api/endpoints/status/{key}", headers={"Authorization": f"Bearer {USER}"}
        )
        return int(status.json()["in_flight"])


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        CRAZY_GARY_SIMULATE=True, CRAZY_GARY_API_KEYS=f"app:user:{USER}", CRAZY_GARY_FALLBACK_WAIT=5
    )
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    inference = FakeInference()
    app = create_app(settings, clock=clock, management=hf, inference=inference)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as http:
        await clock.settle()
        yield Gateway(http, clock, inference)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [record.msg for record in caplog.records if record.name == "crazy_gary.access"]


async def test_a_held_stream_says_who_served_in_the_stream_and_the_log(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A held stream: `pending`, heartbeats, `: served-by 20b primary_sleeping`; the log from state."""
    caplog.set_level(logging.INFO, logger="crazy_gary.access")
    gateway.inference.script("gpt-oss-20b", FakeAnswer(chunks=CHUNKS, headers=SSE))
    answer, lines = await gateway.stream("120b")
    assert answer.headers["x-crazy-gary-served-by"] == "pending"
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert lines[0] == ": waiting for 120b"
    assert lines[first_data - 1] == ": served-by 20b primary_sleeping"
    assert json.loads(lines[first_data][5:])["choices"][0]["delta"]["content"] == "hi"
    (line,) = access_lines(caplog)
    assert (line["served_by"], line["fallback_reason"]) == ("20b", "primary_sleeping")


async def test_a_stream_cut_midway_ends_with_an_error_event(gateway: Gateway) -> None:
    """A stream the endpoint breaks off ends with an error event after what came, unretried, and
    leaves no lease."""
    gateway.inference.script("gpt-oss-20b", FakeAnswer(chunks=CHUNKS[:1], headers=SSE, cut="connect"))
    _, lines = await gateway.stream("20b")
    data = [line[5:].strip() for line in lines if line.startswith("data:")]
    assert json.loads(data[0])["choices"][0]["delta"]["content"] == "hi"
    assert json.loads(data[-2])["error"]["code"] == "upstream_error"
    assert data[-1] == "[DONE]"
    assert gateway.inference.calls["gpt-oss-20b"] == 1
    status = await gateway.http.get("/api/endpoints/status/20b", headers={"Authorization": f"Bearer {USER}"})
    assert status.json()["in_flight"] == 0


RESPONSE_EVENTS = (
    b'event: response.created\ndata: {"type": "response.created", "sequence_number": 0, "response":'
    b' {"id": "resp_1", "object": "response", "created_at": 0, "model": "gpt-oss-20b", "output": [],'
    b' "status": "in_progress", "parallel_tool_calls": true, "tool_choice": "auto", "tools": []}}\n\n',
)


async def test_a_responses_stream_cut_midway_ends_with_an_error_event_the_client_raises(
    gateway: Gateway,
) -> None:
    """A Responses stream the endpoint breaks off ends with `event: error` (no `[DONE]`, which
    that API has not), which the official client raises as an APIError, not a status error."""
    gateway.inference.script("gpt-oss-20b", FakeAnswer(chunks=RESPONSE_EVENTS, headers=SSE, cut="connect"))
    _, lines = await gateway.stream("20b", "/v1/responses", input="hi")
    assert lines[-2] == "event: error"
    error = json.loads(lines[-1][5:])
    assert (error["type"], error["code"], error["error"]["code"]) == (
        "error",
        "upstream_error",
        "upstream_error",
    )
    assert "[DONE]" not in lines[-1]
    gateway.inference.script("gpt-oss-20b", FakeAnswer(chunks=RESPONSE_EVENTS, headers=SSE, cut="connect"))
    client = openai.AsyncOpenAI(
        api_key=USER, base_url=f"{str(gateway.http.base_url).rstrip('/')}/v1", max_retries=0
    )

    async def read() -> list[str]:
        stream = await client.responses.create(model="20b", input="hi", stream=True)
        return [event.type async for event in stream]

    with pytest.raises(openai.APIError, match="broke off") as raised:
        await gateway.run(read())
    assert not isinstance(raised.value, openai.APIStatusError)
    assert await gateway.in_flight("20b") == 0


async def test_a_held_stream_whose_fallback_refuses_ends_with_the_refusal(gateway: Gateway) -> None:
    """Held past its headers (200 sent), a stream the fallback refuses (a 400 of vLLM) ends with an
    error event carrying the endpoint's own message, and lets its lease go."""
    refusal = json.dumps({"error": {"message": "max_tokens is too large", "type": "BadRequestError"}})
    gateway.inference.script("gpt-oss-20b", FakeAnswer(status=400, chunks=(refusal.encode(),)))
    answer, lines = await gateway.stream("120b", "/v1/completions", prompt="Once", max_tokens=10**9)
    assert answer.status_code == 200 and answer.headers["x-crazy-gary-served-by"] == "pending"
    assert ": served-by 20b primary_sleeping" in lines
    error = json.loads(lines[-2][5:])["error"]
    assert (
        error["code"] == "upstream_error" and "20b answered 400: max_tokens is too large" in error["message"]
    )
    assert lines[-1] == "data: [DONE]"
    assert await gateway.in_flight("20b") == 0


async def test_an_endpoint_address_relays_its_event_stream_and_end_to_end_headers(gateway: Gateway) -> None:
    """An event stream from an endpoint's address comes back as it was sent, with the endpoint's
    end-to-end headers but not its cookies or connection headers, and the lease is let go."""
    headers = {**SSE, "x-upstream-trace": "abc", "set-cookie": "hf=1", "connection": "keep-alive"}
    gateway.inference.script("gpt-oss-20b", FakeAnswer(chunks=CHUNKS, headers=headers))
    auth = {"Authorization": f"Bearer {USER}"}

    async def read() -> tuple[httpx2.Response, bytes]:
        async with gateway.http.stream("GET", "/endpoints/20b/v1/events", headers=auth) as answer:
            return answer, await answer.aread()

    answer, content = await gateway.run(read())
    assert content == b"".join(CHUNKS)
    assert answer.headers["x-upstream-trace"] == "abc" and answer.headers["x-crazy-gary-served-by"] == "20b"
    assert "set-cookie" not in answer.headers
    assert gateway.inference.methods[-1] == "GET"
    assert await gateway.in_flight("20b") == 0
