"""vLLM's OpenAI-compatible payloads: chat completions, stream chunks and the model list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ._text import Completion

__all__ = ["completion_json", "models_json", "stream_events"]


def completion_json(completion_id: str, created: int, model: str, completion: Completion) -> dict[str, Any]:
    """A non-streamed `chat.completion`."""
    message = {
        "role": "assistant",
        "content": "".join(completion.content),
        "reasoning": "".join(completion.reasoning),
        "tool_calls": [],
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason}
        ],
        "usage": completion.usage(),
    }


def models_json(model: str, created: int, root: str) -> dict[str, Any]:
    """`GET /v1/models` of an endpoint: the one model it serves, named like the endpoint."""
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "simulator", "root": root}],
    }


async def stream_events(
    completion_id: str,
    created: int,
    model: str,
    completion: Completion,
    *,
    include_usage: bool,
    pace: Callable[[], Awaitable[None]],
) -> AsyncIterator[str]:
    """SSE `data:` events: a role delta, one delta per token (`pace` awaited before each), `[DONE]`.

    The last token's chunk carries the finish reason, as vLLM sends it; `include_usage` adds a
    chunk with empty `choices` and the usage before `[DONE]`.
    """

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    def choice(delta: dict[str, str], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    yield chunk(choice({"role": "assistant", "content": ""}))
    deltas = [("reasoning", token) for token in completion.reasoning]
    deltas += [("content", token) for token in completion.content]
    for position, (kind, token) in enumerate(deltas, start=1):
        await pace()
        finish = completion.finish_reason if position == len(deltas) else None
        yield chunk(choice({kind: token}, finish))
    if not deltas:
        yield chunk(choice({}, completion.finish_reason))
    if include_usage:
        yield chunk([], usage=completion.usage())
    yield "data: [DONE]\n\n"
