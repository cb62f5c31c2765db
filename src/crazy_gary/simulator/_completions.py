"""vLLM's `/v1/completions`: the request the simulator honours, the answer and its stream.

A completion has no chat template, so a gpt-oss endpoint answers it with plain text: no
reasoning field, as vLLM's completions API has none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._text import Completion, RequestError, parse_max_tokens, parse_stream

__all__ = ["CompletionRequest", "completion_stream", "parse_completion_request", "text_completion_json"]


@dataclass(frozen=True)
class CompletionRequest:
    """The parts of a completion request the simulator honours; one prompt per choice."""

    prompts: list[str | list[int]]
    max_tokens: int | None
    stream: bool
    include_usage: bool


def parse_completion_request(body: object) -> CompletionRequest:
    """Check a `/v1/completions` body; `prompt` is a string, a list of token ids, or a list of either."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    max_tokens = parse_max_tokens(body, "max_tokens")
    stream, include_usage = parse_stream(body)
    return CompletionRequest(_prompts(body.get("prompt")), max_tokens, stream, include_usage)


def _prompts(prompt: object) -> list[str | list[int]]:
    if isinstance(prompt, str) and prompt:
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(_is_token(token) for token in prompt):
            return [list(prompt)]
        if all(_is_prompt(item) for item in prompt):
            return list(prompt)
    raise RequestError("prompt must be a non-empty string, a list of token ids, or a list of those")


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_prompt(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(_is_token(token) for token in value)


def _usage(completions: list[Completion]) -> dict[str, Any]:
    prompt = sum(completion.prompt_tokens for completion in completions)
    generated = sum(completion.completion_tokens for completion in completions)
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + generated,
        "completion_tokens": generated,
        "prompt_tokens_details": None,
    }


def _choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }


def text_completion_json(
    completion_id: str, created: int, model: str, completions: list[Completion]
) -> dict[str, Any]:
    """A non-streamed `text_completion`, one choice per prompt."""
    choices = [
        _choice(index, "".join(completion.content), completion.finish_reason)
        for index, completion in enumerate(completions)
    ]
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": _usage(completions),
    }


async def completion_stream(
    completion_id: str,
    created: int,
    model: str,
    completions: list[Completion],
    *,
    include_usage: bool,
    pace: Callable[[], Awaitable[None]],
) -> AsyncIterator[str]:
    """SSE `data:` chunks: one text delta per token (`pace` awaited before each), the last of each
    choice with its finish reason; a usage chunk with empty `choices` when asked; then `[DONE]`."""

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    for index, completion in enumerate(completions):
        tokens = completion.content or [""]
        for position, token in enumerate(tokens, start=1):
            if token:
                await pace()
            finish = completion.finish_reason if position == len(tokens) else None
            yield chunk([_choice(index, token, finish)])
    if include_usage:
        yield chunk([], usage=_usage(completions))
    yield "data: [DONE]\n\n"
