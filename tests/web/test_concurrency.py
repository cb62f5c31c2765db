"""`max_concurrency` through the app on a loopback socket, on the manual clock: the endpoint never
gets more requests at once than it may take, the others go in order of arrival, and the wait for a
slot is bounded as a hold for a cold start is."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.web import create_app

from ..conftest import serve_app
from ..core.fakes import FakeAnswer, FakeManagement

USER = "user-key-123456"
HEADERS = {"Authorization": f"Bearer {USER}"}


@dataclass
class CountingInference:
    """The inference port in memory: every call waits until the test releases it by its tag (the
    message it carries), and the calls upstream at once are counted."""

    current: int = 0
    most: int = 0
    arrived: list[str] = field(default_factory=list)
    served_by: list[str] = field(default_factory=list)
    releases: dict[str, asyncio.Event] = field(default_factory=dict)

    def release(self, tag: str) -> None:
        self.releases.setdefault(tag, asyncio.Event()).set()

    async def open(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> FakeAnswer:
        tag = json.loads(body)["messages"][0]["content"]
        self.arrived.append(tag)
        self.served_by.append(url.removeprefix("http://sim/").split("/", 1)[0])
        self.current += 1
        self.most = max(self.most, self.current)
        try:
            await self.releases.setdefault(tag, asyncio.Event()).wait()
        finally:
            self.current -= 1
        return FakeAnswer()

    async def aclose(self) -> None:
        pass


@dataclass
class Busy:
    http: httpx2.AsyncClient
    clock: ManualClock
    hf: FakeManagement
    inference: CountingInference
    manager: HuggingFaceEndpointManager

    def ask(self, tag: str, model: str = "120b") -> asyncio.Task[httpx2.Response]:
        body = {"model": model, "messages": [{"role": "user", "content": tag}]}
        return asyncio.ensure_future(self.http.post("/v1/chat/completions", json=body, headers=HEADERS))

    async def until(self, condition: Callable[[], bool], *, step: float = 0.0) -> None:
        """Turn the loop (moving the clock by `step` each time) until `condition` holds; 5 s of real
        time at most, for the loopback's bytes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not condition():
            assert loop.time() < deadline, "the condition never held"
            await self.clock.advance(step) if step else await self.clock.settle()
            await asyncio.sleep(0.001)

    async def status(self) -> dict[str, object]:
        answer = await self.http.get("/api/endpoints/status/120b", headers=HEADERS)
        return dict(answer.json())


def _config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        f'[endpoints.120b]\nurl = "demo/gpt-oss-120b"\n{table}\n[endpoints.20b]\nurl = "demo/gpt-oss-20b"\n'
    )
    return path


@contextlib.asynccontextmanager
async def _start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, table: str, states: dict[str, str], **env: object
) -> AsyncIterator[Busy]:
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        CRAZY_GARY_SIMULATE=True,
        CRAZY_GARY_API_KEYS=f"app:user:{USER}",
        CRAZY_GARY_CONFIG=str(_config(tmp_path, table)),
        CRAZY_GARY_RATE_LIMIT="10000/second",
        **env,
    )
    clock = ManualClock()
    hf = FakeManagement(clock, states)
    inference = CountingInference()
    app = create_app(settings, clock=clock, management=hf, inference=inference)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as http:
        await clock.settle()
        yield Busy(http, clock, hf, inference, app.state.manager)


async def test_held_requests_reach_a_woken_endpoint_in_order_never_more_than_it_may_take(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Six requests held through a cold start go out two at a time (max_concurrency 2), in order of
    arrival, each as one ends; the status shows the limit and the queue."""
    states = {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"}
    async with _start(monkeypatch, tmp_path, "max_concurrency = 2", states) as busy:
        tags = [f"r{index}" for index in range(6)]
        asked = []
        for count, tag in enumerate(tags, start=1):
            asked.append(busy.ask(tag))
            await busy.until(lambda count=count: busy.manager.endpoint("120b").pending == count)
        await busy.until(lambda: busy.inference.current == 2, step=1.0)  # the cold start
        await busy.until(lambda: busy.manager.endpoint("120b").gate.queued == 4)
        assert busy.inference.arrived == tags[:2]
        status = await busy.status()
        assert (status["max_concurrency"], status["queued"], status["in_flight"]) == (2, 4, 2)
        assert status["pending"] == 0
        for done, tag in enumerate(tags, start=1):
            busy.inference.release(tag)
            expected = min(done + 2, len(tags))
            await busy.until(lambda expected=expected: len(busy.inference.arrived) == expected)
            assert busy.inference.current <= 2
        answers = await asyncio.gather(*asked)
    assert [answer.status_code for answer in answers] == [200] * 6
    assert busy.inference.arrived == tags
    assert busy.inference.most == 2
    assert {answer.headers["x-crazy-gary-served-by"] for answer in answers} == {"120b"}


async def test_a_request_queued_past_the_fallback_wait_goes_to_the_fallback_as_primary_busy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With its one slot taken, a request waits CRAZY_GARY_FALLBACK_WAIT in the queue, then the
    running fallback answers it with the reason primary_busy."""
    states = {"gpt-oss-120b": "running", "gpt-oss-20b": "running"}
    table = 'max_concurrency = 1\nfallback = "20b"'
    async with _start(monkeypatch, tmp_path, table, states, CRAZY_GARY_FALLBACK_WAIT=5) as busy:
        await busy.until(lambda: busy.manager.endpoint("120b").status().value == "running", step=1.0)
        first = busy.ask("first")
        await busy.until(lambda: busy.inference.current == 1)
        second = busy.ask("second")
        await busy.until(lambda: busy.manager.endpoint("120b").gate.queued == 1)
        await busy.clock.advance(4.9)
        assert busy.inference.arrived == ["first"]
        await busy.until(lambda: len(busy.inference.arrived) == 2, step=0.2)
        busy.inference.release("second")
        answer = await second
        busy.inference.release("first")
        assert (await first).headers["x-crazy-gary-served-by"] == "120b"
    assert answer.status_code == 200
    assert answer.headers["x-crazy-gary-served-by"] == "20b"
    assert answer.headers["x-crazy-gary-fallback-reason"] == "primary_busy"
    assert busy.inference.served_by == ["gpt-oss-120b", "gpt-oss-20b"]


async def test_the_wait_for_a_slot_ends_in_503_with_retry_after(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a fallback, a queued request waits up to the wake timeout, then gets 503 with
    Retry-After in the error shape; past CRAZY_GARY_MAX_PENDING one gets it at once."""
    states = {"gpt-oss-120b": "running", "gpt-oss-20b": "running"}
    table = "max_concurrency = 1\nwake_timeout = 30"
    async with _start(monkeypatch, tmp_path, table, states, CRAZY_GARY_MAX_PENDING=1) as busy:
        await busy.until(lambda: busy.manager.endpoint("120b").status().value == "running", step=1.0)
        first = busy.ask("first")
        await busy.until(lambda: busy.inference.current == 1)
        queued = busy.ask("queued")
        await busy.until(lambda: busy.manager.endpoint("120b").gate.queued == 1)
        refused = await busy.ask("refused")  # no clock moved: refused at once
        await busy.clock.advance(29)
        assert not queued.done()
        await busy.until(queued.done, step=0.5)
        late = await queued
        busy.inference.release("first")
        assert (await first).status_code == 200
    for answer in (refused, late):
        assert answer.status_code == 503
        assert int(answer.headers["retry-after"]) >= 1
        body = answer.json()
        assert body["success"] is False and body["code"] == "no_capacity"
        assert "max_concurrency" in body["error"]
    assert busy.inference.arrived == ["first"]
