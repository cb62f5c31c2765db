"""What HarmonyClient answers: each API's reply and stream pieces, read out of the endpoint's JSON,
each saying who served it and why."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from crazy_gary.engine import Exchange
from crazy_gary.errors import UpstreamError

__all__ = [
    "ChatChunk",
    "ChatReply",
    "CompletionChunk",
    "CompletionReply",
    "EmbeddingReply",
    "ResponseEvent",
    "ResponseReply",
    "answer_of",
    "chat_chunk",
    "chat_reply",
    "completion_chunk",
    "completion_reply",
    "embedding_reply",
    "response_event",
    "response_reply",
    "stream_error",
]


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


@dataclass(frozen=True)
class CompletionReply:
    """A whole text completion (`/v1/completions`): the text of its first choice."""

    text: str
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CompletionChunk:
    """One streamed piece of a text completion."""

    text: str
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ResponseReply:
    """A whole answer of the Responses API: the output text, the reasoning text (from its
    `reasoning` items), who served it and why, and the usage (`input_tokens`, `output_tokens`)."""

    output_text: str
    reasoning: str | None
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ResponseEvent:
    """One event of a streamed Responses answer: its `type` (`response.output_text.delta`, …), the
    text it adds (`delta`, empty when it adds none), and who serves the stream."""

    type: str
    delta: str
    served_by: str
    fallback_reason: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class EmbeddingReply:
    """Embeddings, one vector per input in the order given."""

    embeddings: list[list[float]]
    served_by: str
    fallback_reason: str | None
    usage: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


def answer_of(exchange: Exchange, content: bytes) -> dict[str, Any]:
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


def stream_error(exchange: Exchange, error: Any) -> UpstreamError:
    """The error event a stream ended with (the endpoint's, or the gateway's when it broke off)."""
    message = error.get("message") if isinstance(error, dict) else error
    return UpstreamError(
        f"the stream from {exchange.served_by} ended with an error: {message}", kind="stream"
    )


def _reasoning(part: dict[str, Any]) -> str | None:
    value = part.get("reasoning")
    return value if value is not None else part.get("reasoning_content")


def _first_choice(payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices") or [{}]
    first = choices[0]
    return first if isinstance(first, dict) else {}


def chat_reply(exchange: Exchange, payload: dict[str, Any]) -> ChatReply:
    message = _first_choice(payload).get("message") or {}
    return ChatReply(
        content=message.get("content") or "",
        reasoning=_reasoning(message),
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=payload.get("usage"),
        raw=payload,
    )


def chat_chunk(exchange: Exchange, chunk: dict[str, Any]) -> ChatChunk:
    delta = _first_choice(chunk).get("delta") or {}
    return ChatChunk(
        content=delta.get("content") or "",
        reasoning=_reasoning(delta) or "",
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=chunk.get("usage"),
        raw=chunk,
    )


def completion_reply(exchange: Exchange, payload: dict[str, Any]) -> CompletionReply:
    return CompletionReply(
        text=_first_choice(payload).get("text") or "",
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=payload.get("usage"),
        raw=payload,
    )


def completion_chunk(exchange: Exchange, chunk: dict[str, Any]) -> CompletionChunk:
    return CompletionChunk(
        text=_first_choice(chunk).get("text") or "",
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=chunk.get("usage"),
        raw=chunk,
    )


def _texts(output: list[Any], item_type: str, part_type: str) -> list[str]:
    return [
        part.get("text") or ""
        for item in output
        if isinstance(item, dict) and item.get("type") == item_type
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == part_type
    ]


def response_reply(exchange: Exchange, payload: dict[str, Any]) -> ResponseReply:
    output = payload.get("output") or []
    reasoning = _texts(output, "reasoning", "reasoning_text")
    return ResponseReply(
        output_text="".join(_texts(output, "message", "output_text")),
        reasoning="".join(reasoning) if reasoning else None,
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=payload.get("usage"),
        raw=payload,
    )


def response_event(exchange: Exchange, event: dict[str, Any]) -> ResponseEvent:
    delta = event.get("delta")
    return ResponseEvent(
        type=str(event.get("type") or ""),
        delta=delta if isinstance(delta, str) else "",
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        raw=event,
    )


def _vector(value: Any) -> list[float]:
    """An embedding as floats, whether sent as a list or as base64 little-endian float32."""
    if isinstance(value, str):
        packed = base64.b64decode(value)
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    return [float(number) for number in value or []]


def embedding_reply(exchange: Exchange, payload: dict[str, Any]) -> EmbeddingReply:
    items = sorted(
        (item for item in payload.get("data") or [] if isinstance(item, dict)),
        key=lambda item: item.get("index", 0),
    )
    return EmbeddingReply(
        embeddings=[_vector(item.get("embedding")) for item in items],
        served_by=exchange.served_by,
        fallback_reason=exchange.fallback_reason,
        usage=payload.get("usage"),
        raw=payload,
    )
