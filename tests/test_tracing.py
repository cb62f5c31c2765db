"""Traces: OTLP/HTTP spans received by a real receiver on a loopback socket and decoded with
OpenTelemetry's own protobuf messages; and nothing of the SDK loaded when no endpoint is set."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from .integration.conftest import free_port
from .web._served import OPERATOR, USER, is_status, serve_with_simulator

CHAT = {"model": "120b", "messages": [{"role": "user", "content": "Why do large models sleep?"}]}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass(frozen=True)
class Received:
    """One span as the collector got it, with the attributes of its resource."""

    span: Span
    resource: dict[str, Any]

    @property
    def attributes(self) -> dict[str, Any]:
        return _attributes(self.span.attributes)

    @property
    def parent(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def id(self) -> str:
        return self.span.span_id.hex()

    @property
    def trace(self) -> str:
        return self.span.trace_id.hex()


class Collector:
    """An OTLP/HTTP traces receiver: every `POST /v1/traces` decoded as ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.content_types: set[str] = set()
        self.changed = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        export = ExportTraceServiceRequest.FromString(await request.read())
        async with self.changed:
            for resource_spans in export.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(Received(span, resource) for span in scope_spans.spans)
            self.changed.notify_all()
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def until(self, condition: Callable[[Collector], bool], within: float = 15.0) -> None:
        """Wait until `condition(self)` holds after an export (a real-time deadline: the exporter's
        thread runs in real time)."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: condition(self))

    def named(self, name: str) -> list[Received]:
        return [received for received in self.spans if received.span.name == name]


@contextlib.asynccontextmanager
async def collecting() -> AsyncIterator[Collector]:
    collector = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    collector.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield collector
    finally:
        await runner.cleanup()


async def test_a_held_request_and_its_wake_are_traced_under_the_callers_trace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A chat request held 5 s for sleeping 120b, then served by 20b: its span has the GenAI and
    crazy-gary attributes, is a child of the HTTP span, itself a child of the caller's `traceparent`;
    the wake it caused has a span in the same trace; exported while serving (`OTEL_BSP_SCHEDULE_DELAY`)."""
    async with collecting() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        async with serve_with_simulator(monkeypatch, tmp_path) as served:
            await served.sim_set("endpoints/gpt-oss-120b", state="scaledToZero")
            await served.until(lambda: is_status(served, "120b", "sleeping"))
            headers = {**served.auth, "traceparent": TRACEPARENT}
            answer = await served.run(
                served.http.post(f"{served.url}/v1/chat/completions", json=CHAT, headers=headers)
            )
            assert answer.status_code == 200
            assert answer.headers["X-Crazy-Gary-Served-By"] == "20b"
            usage = answer.json()["usage"]
            await served.until(lambda: is_status(served, "120b", "running"))
            await collector.until(lambda c: bool(c.named("chat 120b")) and bool(c.named("wake 120b")))
            (chat,) = collector.named("chat 120b")
            assert chat.span.kind == Span.SPAN_KIND_CLIENT
            assert chat.attributes == {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "120b",
                "gen_ai.request.stream": False,
                "gen_ai.provider.name": "huggingface",
                "gen_ai.response.model": "openai/gpt-oss-20b",
                "gen_ai.usage.input_tokens": usage["prompt_tokens"],
                "gen_ai.usage.output_tokens": usage["completion_tokens"],
                "http.response.status_code": 200,
                "crazy_gary.served_by": "20b",
                "crazy_gary.fallback_reason": "primary_sleeping",
                "crazy_gary.held_seconds": 5.0,  # CRAZY_GARY_FALLBACK_WAIT, on the manual clock
                "crazy_gary.retries": 0,
            }
            assert chat.resource["service.name"] == "crazy-gary"
            assert chat.trace == TRACE_ID
            (http,) = [received for received in collector.spans if received.id == chat.parent]
            assert http.span.name == "POST /v1/chat/completions"
            assert http.span.kind == Span.SPAN_KIND_SERVER
            assert http.parent == CALLER_SPAN and http.trace == TRACE_ID
            (wake,) = collector.named("wake 120b")
            assert wake.trace == TRACE_ID and wake.parent == http.id  # the request that woke it
            assert wake.attributes == {
                "crazy_gary.endpoint": "120b",
                "crazy_gary.operation": "wake",
                "crazy_gary.actor": "gateway",
                "crazy_gary.outcome": "success",
            }
            assert wake.span.status.code == Status.STATUS_CODE_UNSET
            assert not collector.named("GET /api/endpoints/status/{model_type}")  # polls are not traced
    assert collector.content_types == {"application/x-protobuf"}


async def test_a_stream_and_a_sleep_are_sent_when_the_app_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With batches sent only every minute, a streamed request's span (its tokens read from the
    stream), a sleep's and that of a wake still under way (unfinished) reach the collector by the
    time the app has stopped; OTEL_SERVICE_NAME names the service."""
    async with collecting() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url + "/")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
        async with serve_with_simulator(monkeypatch, tmp_path) as served:
            body = {**CHAT, "model": "20b", "stream": True, "stream_options": {"include_usage": True}}
            answer = await served.run(
                served.http.post(f"{served.url}/v1/chat/completions", json=body, headers=served.auth)
            )
            assert answer.status_code == 200 and "data: [DONE]" in answer.text
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            slept = await served.run(
                served.http.post(f"{served.url}/api/endpoints/sleep/20b", headers=operator)
            )
            assert slept.status_code == 202
            await served.until(lambda: is_status(served, "20b", "sleeping"))
            woken = await served.http.post(f"{served.url}/api/endpoints/wake/20b", headers=operator)
            assert woken.status_code == 202  # and the app stops 30 s (of the clock) before it runs
            assert collector.spans == []  # nothing sent yet: the batch waits a minute
    (chat,) = collector.named("chat 20b")
    attributes = chat.attributes
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.output_tokens"] > 0 and attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert chat.resource["service.name"] == "gateway-eu"
    (slept_20b,) = collector.named("sleep 20b")
    assert slept_20b.attributes["crazy_gary.actor"] == "ops"
    assert slept_20b.attributes["crazy_gary.outcome"] == "success"
    (asked,) = collector.named("POST /api/endpoints/sleep/{model_type}")
    assert slept_20b.parent == asked.id and slept_20b.trace == asked.trace  # the call that asked for it
    (wake,) = collector.named("wake 20b")
    assert wake.attributes["crazy_gary.outcome"] == "unfinished"
    assert wake.attributes["crazy_gary.error"] == "Still under way when crazy-gary stopped."
    assert wake.span.status.code == Status.STATUS_CODE_ERROR


# `crazy-gary serve` (simulating) until it answers a chat request, then the modules it loaded.
_SERVE = """
import asyncio, contextlib, json, sys
import httpx2
from crazy_gary.config import load_settings
from crazy_gary.web import server

async def main():
    started = asyncio.get_running_loop().create_future()
    server._announce = lambda bound, *rest: started.set_result(bound)
    serving = asyncio.create_task(server.serve(load_settings(simulate=True), port=0))
    async with asyncio.timeout(60), httpx2.AsyncClient(timeout=10) as http:
        host, port = await started
        url = f"http://{host}:{port}"
        while (await http.get(url + "/readyz")).status_code != 200:
            await asyncio.sleep(0.02)
        chat = {"model": "20b", "messages": [{"role": "user", "content": "hi"}]}
        answer = await http.post(url + "/v1/chat/completions", json=chat, headers={"Authorization": "Bearer %s"})
    print(answer.status_code)
    print(json.dumps(sorted(sys.modules)))
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving

asyncio.run(main())
"""


def _serve_and_list_modules(tmp_path: Path, **variables: str) -> list[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRAZY_GARY", "HF_", "HUGGINGFACE"))
    }
    env.update(
        CRAZY_GARY_API_KEYS=f"app:user:{USER}",
        CRAZY_GARY_DATA_DIR=str(tmp_path),
        CRAZY_GARY_SIM_INITIAL_STATE="running",
        **variables,
    )
    done = subprocess.run(
        [sys.executable, "-c", _SERVE % USER], env=env, capture_output=True, text=True, timeout=90, check=True
    )
    status, modules = done.stdout.splitlines()[-2:]
    assert status == "200", done.stdout + done.stderr
    loaded: list[str] = json.loads(modules)
    return loaded


def _the_api_alone() -> set[str]:
    """The modules of the OpenTelemetry API, which FastAPI itself imports (its own telemetry)."""
    from importlib.metadata import files

    names = set()
    for file in files("opentelemetry-api") or ():
        if file.suffix == ".py":
            parts = file.with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.update(".".join(parts[:depth]) for depth in range(1, len(parts) + 1))  # namespaces
    return names


def test_without_an_endpoint_serve_loads_no_opentelemetry_sdk(tmp_path: Path) -> None:
    """`serve` without OTEL_EXPORTER_OTLP_ENDPOINT, having answered a chat request, has loaded no
    OpenTelemetry beyond the API FastAPI imports: no SDK, exporter, protobuf, nor crazy_gary.tracing."""
    modules = _serve_and_list_modules(tmp_path)
    otel = {name for name in modules if name.split(".")[0] == "opentelemetry"}
    assert otel <= _the_api_alone()
    assert not [name for name in modules if name.startswith(("google.protobuf", "crazy_gary.tracing"))]


def test_with_an_endpoint_serve_loads_the_sdk(tmp_path: Path) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set (here to a closed port), the same run loads the SDK and
    crazy_gary.tracing: what the test above looks for is what tracing brings."""
    url = f"http://127.0.0.1:{free_port()}"
    modules = _serve_and_list_modules(
        tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_EXPORTER_OTLP_TIMEOUT="1"
    )
    assert "crazy_gary.tracing" in modules
    assert "opentelemetry.sdk.trace" in modules
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in modules
    assert not {name for name in modules if name.startswith("opentelemetry.")} <= _the_api_alone()
