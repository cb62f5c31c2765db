"""The gateway engine: route a chat request, forward it, retry or fall back, count it in flight.

Shared by the web gateway and HarmonyClient; knows no web framework.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from crazy_gary.clock import Clock
from crazy_gary.config import Settings
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import ManagementAPI
from crazy_gary.core.routing import Decision, FallbackReason, Router
from crazy_gary.core.status import EndpointStatus
from crazy_gary.errors import CrazyGaryError, UpstreamError
from crazy_gary.hf.inference import InferenceClient, UpstreamResponse

__all__ = ["BadRequest", "ChatRequest", "Engine", "Exchange"]

CHAT_PATH = "/v1/chat/completions"


class BadRequest(CrazyGaryError):
    """The chat request is not an OpenAI chat request."""

    code = "invalid_request"


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat request: the caller's body, its model's endpoint key, and whether it streams."""

    body: dict[str, Any]
    raw: bytes
    key: str
    stream: bool

    def body_for(self, endpoint: Endpoint) -> bytes:
        """The bytes to send to `endpoint`: the caller's, with `model` set to what that endpoint serves."""
        model = endpoint.spec.name
        if model is None or self.body.get("model") == model:
            return self.raw
        return json.dumps({**self.body, "model": model}, separators=(",", ":")).encode()


@dataclass
class Exchange:
    """An answer whose headers arrived; its body is read by the caller, then `aclose()` is awaited."""

    decision: Decision
    response: UpstreamResponse
    _engine: Engine
    _closed: bool = False

    @property
    def served_by(self) -> str:
        return self.decision.key

    @property
    def fallback_reason(self) -> str | None:
        return self.decision.reason.value if self.decision.reason else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_bytes():
            yield chunk

    async def aread(self) -> bytes:
        return await self.response.aread()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.response.aclose()
            self._engine.manager.end_request(self.decision.key)


class Engine:
    """Routes, forwards and falls back; one per app or HarmonyClient."""

    @classmethod
    def from_settings(cls, settings: Settings, management: ManagementAPI, clock: Clock) -> Engine:
        """The manager, router and pooled client as the settings describe them."""
        manager = HuggingFaceEndpointManager.from_settings(settings, management, clock)
        router = Router(
            manager, clock, fallback_wait=settings.fallback_wait, max_pending=settings.max_pending
        )
        return cls(settings, manager, router, InferenceClient(attempts=settings.retry_attempts))

    async def start(self) -> None:
        await self.manager.start()

    async def aclose(self) -> None:
        """Stop the manager's tasks and close the pooled connections."""
        await self.manager.close()
        await self.inference.aclose()

    def __init__(
        self,
        settings: Settings,
        manager: HuggingFaceEndpointManager,
        router: Router,
        inference: InferenceClient,
    ) -> None:
        self.manager = manager
        self.router = router
        self.inference = inference
        self._managed_headers = {
            "Authorization": f"Bearer {settings.token}",
            "Content-Type": "application/json",
        }
        self._plain_headers = {"Content-Type": "application/json"}

    def parse(self, raw: bytes) -> ChatRequest:
        """Check the body is a JSON object with a known `model`; EndpointNotFound or BadRequest if not."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("The request needs 'model', a string naming an endpoint.")
        if not isinstance(body.get("messages"), list):
            raise BadRequest("The request needs 'messages', a list.")
        return ChatRequest(
            body=body, raw=raw, key=self.manager.resolve(model), stream=body.get("stream") is True
        )

    async def open(self, request: ChatRequest) -> Exchange:
        """Route and send; on a failed endpoint try the next of the chain. The caller must `aclose()`."""
        exclude: set[str] = set()
        why: FallbackReason | None = None
        while True:
            decision = await self.router.route(request.key, exclude=frozenset(exclude), why=why)
            endpoint = self.manager.endpoint(decision.key)
            self.manager.begin_request(decision.key)
            try:
                response = await self._send(request, endpoint, decision)
            except UpstreamError as exc:
                self.manager.end_request(decision.key)
                self._count_failure(endpoint, exc)
                exclude.add(decision.key)
                why = why or _reason_for(exc)
                if not self._has_alternative(request.key, exclude):
                    raise
                continue
            except BaseException:
                self.manager.end_request(decision.key)
                endpoint.breaker.release()
                raise
            if response.status >= 500:
                endpoint.breaker.record_failure()
                exclude.add(decision.key)
                if self._has_alternative(request.key, exclude):
                    await response.aclose()
                    self.manager.end_request(decision.key)
                    why = why or FallbackReason.PRIMARY_ERROR
                    continue
            else:
                endpoint.breaker.record_success()
            return Exchange(decision, response, self)

    async def _send(self, request: ChatRequest, endpoint: Endpoint, decision: Decision) -> UpstreamResponse:
        headers = self._managed_headers if endpoint.spec.managed else self._plain_headers
        return await self.inference.open(decision.url + CHAT_PATH, request.body_for(endpoint), headers)

    def _count_failure(self, endpoint: Endpoint, exc: UpstreamError) -> None:
        """A real failure opens the circuit; a 429, or a 503 from an endpoint gone cold, does not."""
        self.manager.hurry(endpoint.key)
        cold = exc.status == 503 and endpoint.status() is not EndpointStatus.RUNNING
        if exc.status == 429 or cold:
            endpoint.breaker.release()
        else:
            endpoint.breaker.record_failure()

    def _has_alternative(self, primary: str, exclude: set[str]) -> bool:
        return any(key not in exclude for key in self.manager.chain(primary))


def _reason_for(exc: UpstreamError) -> FallbackReason:
    return FallbackReason.PRIMARY_TIMEOUT if exc.kind == "timeout" else FallbackReason.PRIMARY_ERROR
