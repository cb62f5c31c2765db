"""vLLM's `/v1/responses` for gpt-oss: the request the simulator honours, the response and its events.

The answer is the chat answer to the same input, its reasoning a `reasoning` output item before the
`message` item. A stream is named SSE events (`event:` and `data:` lines) numbered by
`sequence_number`, ending with `response.completed`; the Responses API has no `[DONE]`. Around the
reasoning text vLLM sends its own `response.reasoning_part.added` and `.done` events.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ._text import ChatRequest, Completion, RequestError, parse_max_tokens

__all__ = ["ResponseIds", "ResponsesRequest", "parse_responses_request", "response_events", "response_json"]

Pace = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ResponsesRequest:
    """The parts of a Responses API request the simulator honours; `chat` is its input as messages."""

    chat: ChatRequest
    instructions: str | None
    max_output_tokens: int | None
    stream: bool


@dataclass(frozen=True)
class ResponseIds:
    """The ids of one response and of its output items."""

    response: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    reasoning: str = field(default_factory=lambda: f"rs_{uuid.uuid4().hex}")
    message: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")


def parse_responses_request(body: object) -> ResponsesRequest:
    """Check a `/v1/responses` body: `input` is a string or a list of input items."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise RequestError("instructions must be a string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be a boolean")
    max_output_tokens = parse_max_tokens(body, "max_output_tokens")
    messages = _input_messages(body.get("input"))
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    chat = ChatRequest(messages, max_output_tokens, stream, include_usage=True)
    return ResponsesRequest(chat, instructions, max_output_tokens, stream)


def _input_messages(given: object) -> list[dict[str, Any]]:
    if isinstance(given, str) and given:
        return [{"role": "user", "content": given}]
    if isinstance(given, list) and given and all(isinstance(item, dict) for item in given):
        return [dict(item) for item in given]
    raise RequestError("input must be a non-empty string or a non-empty list of input items")


def _reasoning_item(item_id: str, text: str | None, status: str | None) -> dict[str, Any]:
    content = None if text is None else [{"text": text, "type": "reasoning_text"}]
    return {
        "id": item_id,
        "summary": [],
        "type": "reasoning",
        "content": content,
        "encrypted_content": None,
        "status": status,
    }


def _output_text(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"annotations": [], "text": text, "type": "output_text", "logprobs": logprobs}


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_output_text(text)]
    return {"id": item_id, "content": content, "role": "assistant", "status": status, "type": "message"}


def _usage(completion: Completion) -> dict[str, Any]:
    reasoning = len(completion.reasoning)
    return {
        "input_tokens": completion.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning, "tool_output_tokens": 0},
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _output(ids: ResponseIds, completion: Completion) -> list[dict[str, Any]]:
    output = []
    if completion.reasoning:
        output.append(_reasoning_item(ids.reasoning, "".join(completion.reasoning), None))
    if completion.content:
        output.append(_message_item(ids.message, "".join(completion.content), "completed"))
    return output


def response_json(
    ids: ResponseIds, created: int, model: str, request: ResponsesRequest, completion: Completion | None
) -> dict[str, Any]:
    """The `response` object: finished when given its `completion`, else as it begins, in progress."""
    cut = completion is not None and completion.finish_reason == "length"
    status = "in_progress" if completion is None else "incomplete" if cut else "completed"
    return {
        "id": ids.response,
        "created_at": created,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": request.instructions,
        "metadata": None,
        "model": model,
        "object": "response",
        "output": [] if completion is None else _output(ids, completion),
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "background": False,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "previous_response_id": None,
        "prompt": None,
        "reasoning": None,
        "service_tier": "auto",
        "status": status,
        "text": None,
        "top_logprobs": None,
        "truncation": "disabled",
        "usage": None if completion is None else _usage(completion),
        "user": None,
    }


class _Events:
    """Renders numbered SSE events of one stream."""

    def __init__(self) -> None:
        self._numbers = itertools.count()

    def __call__(self, kind: str, **fields: Any) -> str:
        payload = {**fields, "sequence_number": next(self._numbers), "type": kind}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"


async def response_events(
    ids: ResponseIds,
    created: int,
    model: str,
    request: ResponsesRequest,
    completion: Completion,
    *,
    pace: Pace,
) -> AsyncIterator[str]:
    """The stream of one response: created, in progress, its output items token by token
    (`pace` awaited before each token), completed with the whole response and its usage."""
    event = _Events()
    started = response_json(ids, created, model, request, None)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    index = 0
    if completion.reasoning:
        async for line in _reasoning_events(event, ids.reasoning, index, completion.reasoning, pace):
            yield line
        index += 1
    if completion.content:
        async for line in _message_events(event, ids.message, index, completion.content, pace):
            yield line
    yield event("response.completed", response=response_json(ids, created, model, request, completion))


async def _reasoning_events(
    event: _Events, item_id: str, index: int, tokens: list[str], pace: Pace
) -> AsyncIterator[str]:
    text = "".join(tokens)
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    yield event(
        "response.output_item.added", output_index=index, item=_reasoning_item(item_id, None, "in_progress")
    )
    yield event("response.reasoning_part.added", **where, part={"text": "", "type": "reasoning_text"})
    for token in tokens:
        await pace()
        yield event("response.reasoning_text.delta", **where, delta=token)
    yield event("response.reasoning_text.done", **where, text=text)
    yield event("response.reasoning_part.done", **where, part={"text": text, "type": "reasoning_text"})
    yield event(
        "response.output_item.done", output_index=index, item=_reasoning_item(item_id, text, "completed")
    )


async def _message_events(
    event: _Events, item_id: str, index: int, tokens: list[str], pace: Pace
) -> AsyncIterator[str]:
    text = "".join(tokens)
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    yield event(
        "response.output_item.added", output_index=index, item=_message_item(item_id, None, "in_progress")
    )
    yield event("response.content_part.added", **where, part=_output_text("", []))
    for token in tokens:
        await pace()
        yield event("response.output_text.delta", **where, delta=token, logprobs=[])
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part=_output_text(text))
    yield event(
        "response.output_item.done", output_index=index, item=_message_item(item_id, text, "completed")
    )
