"""The engine on the manual clock, with the management API and the inference port in memory: serve,
hold, fall back and why, an endpoint gone cold, retries, the circuit breaker, a stream cut midway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.routing import Router
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.engine import Engine, Exchange, InferenceRequest, RequestEvent
from crazy_gary.errors import UpstreamError
from crazy_gary.metrics import Metrics

from .core._specs import SPECS
from .core.fakes import FakeAnswer, FakeInference, FakeManagement, Step

PRIMARY, FALLBACK = "gpt-oss-120b", "gpt-oss-20b"


@dataclass
class Harness:
    clock: ManualClock
    hf: FakeManagement
    inference: FakeInference
    engine: Engine
    events: list[RequestEvent]

    @property
    def manager(self) -> HuggingFaceEndpointManager:
        return self.engine.manager

    def chat(self, model: str = "120b", *, stream: bool = False) -> InferenceRequest:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        return self.engine.parse(json.dumps(body).encode())

    async def run(self, awaitable: Awaitable[Exchange], within: float = 60.0) -> Exchange:
        """Await `awaitable` while the clock moves a second at a time, for `within` seconds at most."""
        task = asyncio.ensure_future(awaitable)
        await self.clock.settle()
        waited = 0.0
        while not task.done():
            assert waited < within, f"no answer within {within} s"
            await self.clock.advance(1)
            waited += 1
        return task.result()

    async def ask(self, model: str = "120b", *, stream: bool = False, within: float = 60.0) -> Exchange:
        return await self.run(self.engine.open(self.chat(model, stream=stream)), within)

    def open_circuit(self, key: str = "120b") -> None:
        breaker = self.manager.endpoint(key).breaker
        while breaker.state.value != "open":
            breaker.acquire()
            breaker.record_failure()


@asynccontextmanager
async def harness(
    primary: str = "running",
    fallback: str = "running",
    *,
    failures: int = 2,
    specs: Sequence[EndpointSpec] = SPECS,
) -> AsyncIterator[Harness]:
    clock = ManualClock()
    hf = FakeManagement(clock, {PRIMARY: primary, FALLBACK: fallback})
    manager = HuggingFaceEndpointManager(
        specs,
        hf,
        clock,
        wake_timeout=300,
        auto_sleep=900,
        poll_interval=10,
        poll_fast_interval=1,
        breaker_failures=failures,
        breaker_cooldown=30,
    )
    inference = FakeInference(attempts=3)
    engine = Engine(manager, Router(manager, clock, fallback_wait=5), inference, clock, token="hf_test")
    events: list[RequestEvent] = []
    engine.subscribe(events.append)
    async with manager:
        await clock.settle()
        yield Harness(clock, hf, inference, engine, events)
    await engine.aclose()


async def test_running_primary_serves_counted_in_flight_until_closed() -> None:
    """A running primary answers with HF's token, in flight (activity at both ends) until closed."""
    async with harness() as h:
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("120b", None)
        assert h.manager.status("120b").in_flight == 1
        url, body, headers = h.inference.sent[0]
        assert url == "http://sim/gpt-oss-120b/v1/chat/completions"
        assert json.loads(body)["model"] == PRIMARY and headers["Authorization"] == "Bearer hf_test"
        started = h.manager.endpoint("120b").last_activity
        await h.clock.advance(3)
        assert json.loads(await exchange.aread())["object"] == "chat.completion"
        await exchange.aclose()
        assert h.manager.status("120b").in_flight == 0
        assert h.manager.endpoint("120b").last_activity == started + 3  # type: ignore[operator]
        (event,) = h.events
        assert (event.served_by, event.status, event.retries, event.duration) == ("120b", 200, 0, 3.0)
        assert event.held == 0  # served at once


async def test_a_request_held_for_a_cold_chain_is_served_by_the_first_to_run() -> None:
    """With the whole chain asleep, the request is held and served by the primary once it runs;
    its event tells how long it was held."""
    async with harness(primary="scaledToZero", fallback="paused") as h:
        started = h.clock.monotonic()
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("120b", None)
        assert 20 <= h.clock.monotonic() <= 23
        assert h.hf.calls["starts"] == 2
        await exchange.aclose()
        (event,) = h.events
        assert event.held == h.clock.monotonic() - started


@pytest.mark.parametrize(
    ("reason", "primary", "steps"),
    [
        ("primary_sleeping", "scaledToZero", ()),
        ("primary_starting", "initializing", ()),
        ("primary_error", "running", (500,)),
        ("primary_error", "running", ("connect",) * 3),
        ("primary_timeout", "running", ("timeout",) * 3),
        ("circuit_open", "running", ()),
    ],
)
async def test_fallback_answers_with_its_reason(reason: str, primary: str, steps: tuple[Step, ...]) -> None:
    """The fallback answers with the reason: after the 5 s wait for a cold primary, else at once."""
    async with harness(primary=primary) as h:
        h.inference.script(PRIMARY, *steps)
        if reason == "circuit_open":
            h.open_circuit()
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", reason)
        waited = h.clock.monotonic()
        assert 5 <= waited <= 6 if reason in ("primary_sleeping", "primary_starting") else waited == 0
        await exchange.aclose()
        assert (h.events[0].served_by, h.events[0].fallback_reason) == ("20b", reason)
        assert h.manager.status("120b").in_flight == h.manager.status("20b").in_flight == 0


async def test_a_503_from_an_endpoint_gone_cold_is_not_a_failure() -> None:
    """503s from an endpoint HF meanwhile scaled to zero: woken, fallen back, its circuit not charged."""
    async with harness(failures=1) as h:
        h.hf.records[PRIMARY].state = "scaledToZero"  # behind our back: still running as last read
        h.inference.script(PRIMARY, 503, 503, 503)
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", "primary_sleeping")
        assert h.manager.status("120b").circuit == "closed"
        assert h.hf.calls["starts"] == 1
        await exchange.aclose()
        assert (h.events[0].retries, h.events[0].upstream_errors) == (2, ("status_503",))


async def test_a_503_from_an_endpoint_still_running_is_a_failure() -> None:
    """The same 503s from an endpoint HF still reports running count against its circuit."""
    async with harness(failures=1) as h:
        h.inference.script(PRIMARY, 503, 503, 503)
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", "primary_error")
        assert h.manager.status("120b").circuit == "open"
        await exchange.aclose()


async def test_retries_are_counted_once_from_the_attempts() -> None:
    """503, 503, 200 upstream: one answer, three calls, two retries in the event and in /metrics."""
    async with harness() as h:
        metrics = Metrics(h.manager, h.clock)
        metrics.attach(h.engine)
        h.inference.script(PRIMARY, 503, 503)
        exchange = await h.ask()
        assert (exchange.served_by, exchange.response.status) == ("120b", 200)
        await exchange.aclose()
        assert h.inference.calls[PRIMARY] == 3
        assert (h.events[0].retries, h.events[0].upstream_errors) == (2, ())
        assert metrics.registry.get_sample_value("crazy_gary_retries_total", {"endpoint": "120b"}) == 2


async def test_the_circuit_opens_then_lets_one_trial_through_after_the_cooldown() -> None:
    """Two failures open the circuit; after the cooldown one trial goes through and closes it."""
    async with harness() as h:
        h.inference.script(PRIMARY, 500, 500)
        for _ in range(2):
            exchange = await h.ask()
            assert exchange.fallback_reason == "primary_error"
            await exchange.aclose()
        assert h.manager.status("120b").circuit == "open"
        exchange = await h.ask()
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", "circuit_open")
        await exchange.aclose()
        assert h.inference.calls[PRIMARY] == 2
        await h.clock.advance(30)
        assert h.manager.status("120b").circuit == "half_open"
        h.inference.gates[PRIMARY] = gate = asyncio.Event()
        trial = asyncio.ensure_future(h.engine.open(h.chat()))
        await h.clock.settle()
        meanwhile = await h.ask()
        assert (meanwhile.served_by, meanwhile.fallback_reason) == ("20b", "circuit_open")
        await meanwhile.aclose()
        gate.set()
        exchange = await h.run(trial)
        assert (exchange.served_by, exchange.fallback_reason) == ("120b", None)
        await exchange.aclose()
        assert h.manager.status("120b").circuit == "closed"


async def test_a_cancelled_trial_releases_its_lease() -> None:
    """A half-open trial cancelled while sent leaves no request in flight and the trial free."""
    async with harness() as h:
        h.open_circuit()
        await h.clock.advance(30)
        h.inference.gates[PRIMARY] = asyncio.Event()
        trial = asyncio.ensure_future(h.engine.open(h.chat()))
        await h.clock.settle()
        breaker = h.manager.endpoint("120b").breaker
        assert h.manager.status("120b").in_flight == 1 and not breaker.allows()
        trial.cancel()
        await asyncio.gather(trial, return_exceptions=True)
        assert h.manager.status("120b").in_flight == 0
        assert breaker.state.value == "half_open" and breaker.allows()


async def test_a_stream_cut_midway_is_not_retried() -> None:
    """A stream the endpoint breaks off: what came is kept, the error surfaces, nothing is resent."""
    async with harness() as h:
        chunks = (b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n')
        h.inference.script(PRIMARY, FakeAnswer(chunks=chunks, cut="connect"))
        exchange = await h.ask(stream=True)
        got: list[bytes] = []

        async def read() -> None:
            async for chunk in exchange.aiter_bytes():
                got.append(chunk)

        with pytest.raises(UpstreamError):
            await read()
        assert tuple(got) == chunks
        assert h.manager.status("120b").in_flight == 1
        await exchange.aclose()
        assert h.inference.calls[PRIMARY] == 1
        assert h.manager.status("120b").in_flight == 0
        (event,) = h.events
        assert (event.served_by, event.stream, event.upstream_errors) == ("120b", True, ("connect",))


async def test_nothing_left_to_try_raises_the_upstream_error() -> None:
    """When the fallback fails too, the last UpstreamError reaches the caller and the event says 502."""
    async with harness() as h:
        h.inference.script(PRIMARY, "connect", "connect", "connect")
        h.inference.script(FALLBACK, "timeout", "timeout", "timeout")
        with pytest.raises(UpstreamError) as raised:
            await h.ask()
        assert raised.value.kind == "timeout"
        (event,) = h.events
        assert (event.served_by, event.status, event.retries) == (None, 502, 4)
        assert h.manager.status("120b").in_flight == h.manager.status("20b").in_flight == 0


@pytest.mark.parametrize(
    ("api", "field", "value"),
    [("completions", "prompt", "Once"), ("responses", "input", "hi"), ("embeddings", "input", ["a"])],
)
async def test_every_api_falls_back_on_its_own_path(api: str, field: str, value: object) -> None:
    """A completions, Responses or embeddings request held for a sleeping primary goes to the
    fallback's route of the same API, named as the fallback expects, and is counted by its API."""
    async with harness(primary="scaledToZero") as h:
        raw = json.dumps({"model": "120b", field: value}).encode()
        exchange = await h.run(h.engine.open(h.engine.parse(raw, api)))  # type: ignore[arg-type]
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", "primary_sleeping")
        url, body, _ = h.inference.sent[-1]
        assert url == f"http://sim/gpt-oss-20b/v1/{api}"
        assert json.loads(body) == {"model": FALLBACK, field: value}
        await exchange.aclose()
        assert [event.api for event in h.events] == [api]


API_BODIES = {
    "chat": {"messages": [{"role": "user", "content": "hi"}]},
    "completions": {"prompt": "Once"},
    "responses": {"input": "hi"},
    "embeddings": {"input": ["a"]},
}


def request_of(h: Harness, api: str, *, stream: bool = False) -> InferenceRequest:
    body = {"model": "120b", **API_BODIES[api], **({"stream": True} if stream else {})}
    return h.engine.parse(json.dumps(body).encode(), api)  # type: ignore[arg-type]


@pytest.mark.parametrize("api", list(API_BODIES))
async def test_every_api_is_retried_counted_and_leased_like_chat(api: str) -> None:
    """503, 503, 200 on any API: one answer, three calls, two retries counted, activity at its
    start and end, nothing left in flight."""
    async with harness() as h:
        h.inference.script(PRIMARY, 503, 503)
        before = h.manager.status("120b").last_activity
        await h.clock.advance(7)
        exchange = await h.run(h.engine.open(request_of(h, api)))
        assert (exchange.served_by, exchange.response.status) == ("120b", 200)
        assert h.manager.status("120b").in_flight == 1
        await exchange.aclose()
        assert h.inference.calls[PRIMARY] == 3
        (event,) = h.events
        assert (event.api, event.retries) == (api, 2)
        status = h.manager.status("120b")
        assert status.in_flight == 0 and status.last_activity != before


@pytest.mark.parametrize("api", list(API_BODIES))
async def test_every_api_opens_the_circuit_and_falls_back(api: str) -> None:
    """Two failures of the primary on any API open its circuit; the next request goes to the
    fallback with `circuit_open` and never reaches the primary."""
    async with harness() as h:
        h.inference.script(PRIMARY, 500, 500)
        for _ in range(2):
            exchange = await h.run(h.engine.open(request_of(h, api)))
            assert (exchange.served_by, exchange.fallback_reason) == ("20b", "primary_error")
            await exchange.aclose()
        assert h.manager.status("120b").circuit == "open"
        exchange = await h.run(h.engine.open(request_of(h, api)))
        assert (exchange.served_by, exchange.fallback_reason) == ("20b", "circuit_open")
        await exchange.aclose()
        assert h.inference.calls[PRIMARY] == 2


@pytest.mark.parametrize("api", ["completions", "responses"])
async def test_a_stream_of_any_api_cut_midway_is_not_retried(api: str) -> None:
    """A completions or Responses stream broken off after its first bytes is not sent again."""
    async with harness() as h:
        chunks = (b"event: response.created\ndata: {}\n\n", b'data: {"n": 2}\n\n')
        h.inference.script(PRIMARY, FakeAnswer(chunks=chunks, cut="connect"))
        exchange = await h.run(h.engine.open(request_of(h, api, stream=True)))
        got: list[bytes] = []

        async def read() -> None:
            async for chunk in exchange.aiter_bytes():
                got.append(chunk)

        with pytest.raises(UpstreamError):
            await read()
        await exchange.aclose()
        assert tuple(got) == chunks
        assert h.inference.calls[PRIMARY] == 1 and h.inference.calls.get(FALLBACK, 0) == 0
        (event,) = h.events
        assert (event.api, event.stream, event.upstream_errors) == (api, True, ("connect",))
        assert h.manager.status("120b").in_flight == 0


async def test_an_endpoint_address_keeps_method_path_and_headers_but_not_the_callers_key() -> None:
    """A request to an endpoint's address goes with its method, path and query, its end-to-end
    headers and HF's token in place of the caller's key."""
    async with harness() as h:
        request = h.engine.parse_endpoint(
            "gpt-oss-120b",
            "GET",
            "info",
            "verbose=1",
            b"",
            {"Authorization": "Bearer caller-key", "Accept": "application/json", "Connection": "close"},
        )
        exchange = await h.run(h.engine.open(request))
        url, body, headers = h.inference.sent[-1]
        assert (url, body, h.inference.methods[-1]) == ("http://sim/gpt-oss-120b/info?verbose=1", b"", "GET")
        assert headers == {"Accept": "application/json", "Authorization": "Bearer hf_test"}
        await exchange.aclose()
        assert h.events[-1].api == "endpoint"


async def test_an_unmanaged_endpoint_gets_no_token_at_its_address() -> None:
    """An endpoint crazy-gary does not manage gets neither HF's token nor the caller's key."""
    local = EndpointSpec(key="local", url="http://local:9001", inference_url="http://local:9001")
    async with harness(specs=[*SPECS, local]) as h:
        request = h.engine.parse_endpoint(
            "local", "POST", "v1/completions", "", b'{"prompt": "x"}', {"Authorization": "Bearer caller-key"}
        )
        exchange = await h.run(h.engine.open(request))
        url, body, headers = h.inference.sent[-1]
        assert (url, body, dict(headers)) == ("http://local:9001/v1/completions", b'{"prompt": "x"}', {})
        await exchange.aclose()
