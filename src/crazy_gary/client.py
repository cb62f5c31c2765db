"""HarmonyClient: the engine in-process, for Python programs (README: Python)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import SIMULATOR_TOKEN, Settings, load_settings, load_simulator_config
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import InferencePort, ManagementAPI
from crazy_gary.core.status import EndpointStatus
from crazy_gary.engine import Engine, Exchange
from crazy_gary.errors import UpstreamError
from crazy_gary.hf.inference import quiet_retry_hooks
from crazy_gary.hf.management import HfManagement
from crazy_gary.simulator import SimulatorServer

__all__ = ["ChatChunk", "ChatReply", "HarmonyClient"]


@dataclass(frozen=True)
class ChatReply:
    """A whole answer: the text, the chain of thought, who served it and why, the token counts."""

    content: str
    reasoning: str | None
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ChatChunk:
    """One streamed chunk: the pieces of text it adds, and who serves the stream."""

    content: str
    reasoning: str
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


def _reasoning(part: dict[str, Any]) -> str | None:
    value = part.get("reasoning")
    return value if value is not None else part.get("reasoning_content")


class HarmonyClient:
    """The same engine the server runs, as an async context manager.

    `async with HarmonyClient() as client:` reads the settings from the environment; the status
    methods answer the endpoint objects of the REST API. `management` and `inference` replace the
    clients of Hugging Face's management API and of the endpoints (closed with the engine).
    Entering turns stamina's global retry hooks off: retries are counted by crazy-gary itself.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        management: ManagementAPI | None = None,
        inference: InferencePort | None = None,
    ) -> None:
        self._settings = settings or load_settings()
        self._clock = clock or SystemClock()
        self._management = management
        self._inference = inference
        self._stack = contextlib.AsyncExitStack()
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("use HarmonyClient as `async with HarmonyClient() as client:`")
        return self._engine

    @property
    def manager(self) -> HuggingFaceEndpointManager:
        return self.engine.manager

    async def __aenter__(self) -> HarmonyClient:
        """Start the engine; when simulating, the simulator too, in this process."""
        quiet_retry_hooks()
        management = self._management
        if management is None:
            url = self._settings.endpoints_api_url
            if self._settings.simulating:
                config = load_simulator_config(token=SIMULATOR_TOKEN)
                url = (
                    await self._stack.enter_async_context(SimulatorServer(config, self._clock))
                ).management_url
            owned = HfManagement(self._settings.token, url, clock=self._clock)
            self._stack.push_async_callback(owned.aclose)
            management = owned
        self._engine = Engine.from_settings(
            self._settings, management, self._clock, inference=self._inference
        )
        self._stack.push_async_callback(self._engine.aclose)
        await self._engine.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def get_all_endpoint_status(self) -> dict[str, dict[str, Any]]:
        """Every endpoint object by key, as `GET /api/endpoints/status` shows them."""
        return {key: view.to_dict() for key, view in self.manager.all_status().items()}

    async def get_endpoint_status(self, model_type: str) -> dict[str, Any]:
        """One endpoint object."""
        return self.manager.status(self.manager.resolve(model_type)).to_dict()

    async def wake_endpoint(self, model_type: str) -> bool:
        """True once the wake is accepted (or the endpoint already runs)."""
        result = self.manager.wake(self.manager.resolve(model_type), actor="harmony-client")
        return result.status is not EndpointStatus.ERROR

    async def sleep_endpoint(self, model_type: str) -> bool:
        """True once the sleep is accepted (or the endpoint already sleeps)."""
        result = self.manager.sleep(self.manager.resolve(model_type), actor="harmony-client")
        return result.status is not EndpointStatus.ERROR

    async def wake_all_endpoints(self) -> dict[str, bool]:
        return {key: await self.wake_endpoint(key) for key in self.manager.keys}

    async def sleep_all_endpoints(self) -> dict[str, bool]:
        return {key: await self.sleep_endpoint(key) for key in self.manager.keys}

    async def chat(
        self, messages: Sequence[dict[str, Any]], model: str = "120b", stream: bool = False, **params: Any
    ) -> Any:
        """Ask `model` (or its fallback); a ChatReply, or with `stream=True` an async iterator of ChatChunk."""
        body = {**params, "model": model, "messages": list(messages), "stream": stream}
        request = self.engine.parse(json.dumps(body).encode())
        if stream:
            return self._stream(await self.engine.open(request))
        exchange = await self.engine.open(request)
        try:
            payload = _answer(exchange, await exchange.aread())
        finally:
            await exchange.aclose()
        message = (payload.get("choices") or [{}])[0].get("message") or {}
        return ChatReply(
            content=message.get("content") or "",
            reasoning=_reasoning(message),
            served_by=exchange.served_by,
            fallback_reason=exchange.fallback_reason,
            usage=payload.get("usage"),
            raw=payload,
        )

    async def _stream(self, exchange: Exchange) -> AsyncIterator[ChatChunk]:
        try:
            if exchange.response.status != 200:
                _answer(exchange, await exchange.aread())
            async for line in exchange.response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
                yield ChatChunk(
                    content=delta.get("content") or "",
                    reasoning=_reasoning(delta) or "",
                    served_by=exchange.served_by,
                    fallback_reason=exchange.fallback_reason,
                    usage=chunk.get("usage"),
                    raw=chunk,
                )
        finally:
            await exchange.aclose()


def _answer(exchange: Exchange, content: bytes) -> dict[str, Any]:
    """The JSON answer, or UpstreamError with the endpoint's own message when it refused."""
    status = exchange.response.status
    try:
        payload = json.loads(content)
    except ValueError:
        payload = {}
    if status != 200 or not isinstance(payload, dict):
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamError(
            f"{exchange.served_by} answered {status}: {message or 'no details'}", kind="status", status=status
        )
    return payload
