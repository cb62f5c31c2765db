"""HarmonyClient: the engine in-process, for Python programs (README: Python)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from crazy_gary.client_replies import (
    ChatChunk,
    ChatReply,
    CompletionChunk,
    CompletionReply,
    EmbeddingReply,
    ResponseEvent,
    ResponseReply,
    answer_of,
    chat_chunk,
    chat_reply,
    completion_chunk,
    completion_reply,
    embedding_reply,
    response_event,
    response_reply,
    stream_error,
)
from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import SIMULATOR_TOKEN, Settings, load_settings, load_simulator_config
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import InferencePort, ManagementAPI
from crazy_gary.core.status import EndpointStatus
from crazy_gary.engine import Engine, Exchange
from crazy_gary.hf.inference import quiet_retry_hooks
from crazy_gary.hf.management import HfManagement
from crazy_gary.inference_requests import Api, InferenceRequest
from crazy_gary.simulator import SimulatorServer

__all__ = [
    "ChatChunk",
    "ChatReply",
    "CompletionChunk",
    "CompletionReply",
    "EmbeddingReply",
    "HarmonyClient",
    "ResponseEvent",
    "ResponseReply",
]


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
        return await self._ask("chat", body, chat_reply, chat_chunk)

    async def complete(
        self, prompt: str | Sequence[str], model: str = "120b", stream: bool = False, **params: Any
    ) -> Any:
        """A text completion (`/v1/completions`) of `prompt`: a CompletionReply, or with `stream=True`
        an async iterator of CompletionChunk."""
        body = {**params, "model": model, "prompt": prompt if isinstance(prompt, str) else list(prompt)}
        return await self._ask("completions", {**body, "stream": stream}, completion_reply, completion_chunk)

    async def respond(
        self, input: str | Sequence[dict[str, Any]], model: str = "120b", stream: bool = False, **params: Any
    ) -> Any:
        """An answer of the Responses API to `input` (text, or input items): a ResponseReply, or with
        `stream=True` an async iterator of ResponseEvent."""
        body = {**params, "model": model, "input": input if isinstance(input, str) else list(input)}
        return await self._ask("responses", {**body, "stream": stream}, response_reply, response_event)

    async def embed(self, input: str | Sequence[str], model: str, **params: Any) -> EmbeddingReply:
        """Embeddings of `input` (one text or several) by the embedding endpoint `model`."""
        body = {"encoding_format": "float", **params, "model": model}
        body["input"] = input if isinstance(input, str) else list(input)
        reply: EmbeddingReply = await self._ask("embeddings", body, embedding_reply, None)
        return reply

    async def _ask(
        self,
        api: Api,
        body: dict[str, Any],
        reply: Callable[[Exchange, dict[str, Any]], Any],
        piece: Callable[[Exchange, dict[str, Any]], Any] | None,
    ) -> Any:
        request = self.engine.parse(json.dumps(body).encode(), api)
        if request.stream and piece is not None:
            return self._stream(request, piece)
        exchange = await self.engine.open(request)
        try:
            payload = answer_of(exchange, await exchange.aread())
        finally:
            await exchange.aclose()
        return reply(exchange, payload)

    async def _stream(
        self, request: InferenceRequest, piece: Callable[[Exchange, dict[str, Any]], Any]
    ) -> AsyncIterator[Any]:
        """The pieces of a streamed answer, one per `data:` line (the `event:` lines of a Responses
        stream repeat the `type` its data carries). The request is sent when the first piece is
        asked for, so a stream never iterated holds nothing; an error event raises UpstreamError."""
        exchange = await self.engine.open(request)
        try:
            if exchange.response.status != 200:
                answer_of(exchange, await exchange.aread())
            async for line in exchange.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                data = json.loads(line[5:])
                if isinstance(data, dict) and data.get("error"):
                    raise stream_error(exchange, data["error"])
                yield piece(exchange, data)
        finally:
            await exchange.aclose()
