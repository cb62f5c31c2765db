"""The gateway through the app, on the manual clock, with the management API and the inference port
in memory (`create_app(..., inference=...)`): held streams, who served, a stream cut midway."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.web import create_app

from ..conftest import serve_app
from ..core.fakes import FakeAnswer, FakeInference, FakeManagement

USER = "user-key-123456"
SSE = {"content-type": "text/event-stream"}
CHUNKS = (b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', b"data: [DONE]\n\n")


@dataclass
class Gateway:
    http: httpx2.AsyncClient
    clock: ManualClock
    inference: FakeInference

    async def stream(self, model: str) -> tuple[httpx2.Response, list[str]]:
        """One streamed chat read to its end while the clock moves a second at a time."""
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}

        async def read() -> tuple[httpx2.Response, list[str]]:
            headers = {"Authorization": f"Bearer {USER}"}
            async with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
                return answer, [line async for line in answer.aiter_lines() if line]

        reading = asyncio.ensure_future(read())
        for _ in range(30):
            await self.clock.settle()  # turns of the loop, for the loopback's bytes
            if reading.done():
                break
            await self.clock.advance(1)
        return await reading


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
