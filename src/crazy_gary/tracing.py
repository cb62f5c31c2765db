"""Traces through OpenTelemetry (README, "Traces"), loaded only when an OTLP endpoint is set.

A span per inference request, with the GenAI semantic conventions' attributes and crazy-gary's own
(who served it, why, how long it was held for a cold start), as a child of FastAPI's HTTP span,
itself a child of the caller's `traceparent`; and a span per wake and sleep. Spans are built from
the events the engine and the manager already tell, so neither knows of OpenTelemetry; they go out
in batches (OpenTelemetry's BatchSpanProcessor, its `OTEL_BSP_*` variables) over OTLP/HTTP, and
what is still queued is sent when the app stops. The SDK reads the other `OTEL_*` variables itself
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, the sampler, …).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from crazy_gary.core.manager import HuggingFaceEndpointManager, ManagerEvent
from crazy_gary.engine import Engine, RequestEvent

__all__ = ["SERVICE", "Tracing"]

SERVICE = "crazy-gary"  # the service's name unless OTEL_SERVICE_NAME (or the resource's) says another
# gen_ai.operation.name of each API; a request to an endpoint's own address is one of our own kind
_OPERATIONS = {
    "chat": "chat",
    "completions": "text_completion",
    "responses": "chat",
    "embeddings": "embeddings",
    "endpoint": "endpoint",
}
# What FastAPI's HTTP spans are made for: the gateway's routes and the wake and sleep calls, not
# probes, scrapes, the page and its event stream
_TRACED = ("/v1/", "/endpoints/", "/api/endpoints/wake", "/api/endpoints/sleep")
_UNFINISHED = "Still under way when crazy-gary stopped."


def _resource() -> Resource:
    """The SDK's resource from the environment, named crazy-gary unless it names itself."""
    detected = Resource.create({SERVICE_VERSION: importlib.metadata.version("crazy-gary")})
    name = detected.attributes.get(SERVICE_NAME)
    if not isinstance(name, str) or name.startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: SERVICE}))
    return detected


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    path: str = scope.get("path", "")
    return not path.removeprefix(scope.get("root_path", "")).startswith(_TRACED)


class Tracing:
    """The spans of one app: built in `create_app`, started and closed by its lifespan."""

    def __init__(self, traces_url: str) -> None:
        """Spans are sent to `traces_url`, the OTLP/HTTP traces address (`…/v1/traces`)."""
        self._url = traces_url
        # shut down by `aclose`, not at exit: an app's provider lives as long as the app
        self.provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        self._tracer = self.provider.get_tracer("crazy_gary")
        self._manager: HuggingFaceEndpointManager | None = None
        self._operations: dict[str, tuple[str, Span]] = {}  # the wake or sleep under way, by endpoint

    def fastapi_telemetry(self) -> TelemetryConfig:
        """FastAPI's own telemetry: its HTTP spans only (which take the caller's `traceparent`),
        through this provider; no metrics or logs (crazy-gary has its own), no spans per dependency."""
        return {
            "tracer_provider": self.provider,
            "tracing": True,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _untraced,
        }

    def start(self, engine: Engine) -> None:
        """Export from now on, and follow `engine`'s requests and its manager's operations (before
        the manager starts: an operation resumed at start has its span too)."""
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=self._url)))
        self._manager = engine.manager
        engine.subscribe(self.on_request)
        engine.manager.subscribe(self.on_manager_event)

    async def aclose(self) -> None:
        """End the spans of operations still under way, and send what is queued (off the loop: the
        exporter's calls block)."""
        for key in list(self._operations):
            self._end_operation(key, "unfinished", _UNFINISHED)
        await asyncio.to_thread(self.provider.shutdown)

    # -- requests -----------------------------------------------------------------------------
    def on_request(self, event: RequestEvent) -> None:
        """The span of one inference request, which just ended (`event.duration` ago it began);
        a child of the request's HTTP span, which is current here."""
        end = time.time_ns()
        operation = _OPERATIONS[event.api]
        span = self._tracer.start_span(
            f"{operation} {event.model}",
            kind=SpanKind.CLIENT,
            start_time=end - int(event.duration * 1e9),
            attributes=self._request_attributes(event, operation),
        )
        if event.status >= 400:  # a refusal, a failure, or a caller who left (499)
            error = event.upstream_errors[-1] if event.upstream_errors else str(event.status)
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)

    def _request_attributes(self, event: RequestEvent, operation: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": event.model,
            "gen_ai.request.stream": event.stream,
            "http.response.status_code": event.status,
            "crazy_gary.held_seconds": event.held,
            "crazy_gary.retries": event.retries,
        }
        if event.served_by is not None:
            attributes["crazy_gary.served_by"] = event.served_by
            attributes.update(self._served_attributes(event.served_by))
        if event.fallback_reason is not None:
            attributes["crazy_gary.fallback_reason"] = event.fallback_reason
        if event.tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = event.tokens.prompt
            attributes["gen_ai.usage.output_tokens"] = event.tokens.completion
        if event.stream and event.first_byte is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = event.first_byte
        if event.upstream_errors:
            attributes["crazy_gary.upstream_errors"] = list(event.upstream_errors)
        return attributes

    def _served_attributes(self, key: str) -> dict[str, str]:
        """The provider and the model of the endpoint that served: Hugging Face's, where it manages
        it and has read its repository."""
        assert self._manager is not None, "started"
        endpoint = self._manager.endpoint(key)
        if not endpoint.spec.managed:
            return {}
        attributes = {"gen_ai.provider.name": "huggingface"}
        if endpoint.upstream is not None and endpoint.upstream.repository:
            attributes["gen_ai.response.model"] = endpoint.upstream.repository
        return attributes

    # -- operations ---------------------------------------------------------------------------
    def on_manager_event(self, event: ManagerEvent) -> None:
        """A wake or sleep began (a child of the request that asked for it, if any) or ended."""
        if event.kind == "operation" and event.operation is not None:
            if event.key in self._operations:  # a wake and a sleep cancel each other
                self._end_operation(event.key, "cancelled", f"Cancelled by a {event.operation}.")
            attributes = {
                "crazy_gary.endpoint": event.key,
                "crazy_gary.operation": event.operation,
                "crazy_gary.actor": event.actor or "api",
            }
            if event.request_id:
                attributes["crazy_gary.request_id"] = event.request_id
            span = self._tracer.start_span(f"{event.operation} {event.key}", attributes=attributes)
            self._operations[event.key] = (event.operation, span)
        elif event.kind == "operation_done" and self._operations.get(event.key, ("",))[0] == event.operation:
            outcome = "success" if event.success else "timed_out" if event.timed_out else "failed"
            self._end_operation(event.key, outcome, event.error)

    def _end_operation(self, key: str, outcome: str, error: str | None) -> None:
        _, span = self._operations.pop(key)
        span.set_attribute("crazy_gary.outcome", outcome)
        if outcome != "success":
            span.set_status(Status(StatusCode.ERROR, error))
        if error is not None:
            span.set_attribute("crazy_gary.error", error)
            span.set_attribute("error.type", outcome)
        span.end()
