"""Deterministic answers: the same prompt to the same endpoint always gets the same text.

A "token" here is one word with its leading space, which is close enough to a real tokenizer
for pacing, `max_tokens` and `usage`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChatRequest",
    "Completion",
    "RequestError",
    "compose",
    "compose_text",
    "parse_chat_request",
    "parse_max_tokens",
    "parse_stream",
]

_WORDS = [
    "model",
    "endpoint",
    "replica",
    "request",
    "answer",
    "token",
    "stream",
    "latency",
    "budget",
    "cold",
    "start",
    "warm",
    "cache",
    "queue",
    "fallback",
    "circuit",
    "breaker",
    "retry",
    "backoff",
    "signal",
    "metric",
    "dashboard",
    "price",
    "hour",
    "sleep",
    "wake",
    "ready",
    "running",
    "scaled",
    "zero",
    "gateway",
    "harmony",
    "channel",
    "final",
    "analysis",
    "reasoning",
    "context",
    "window",
    "prompt",
    "result",
    "value",
    "system",
    "careful",
    "simple",
    "clear",
    "quick",
    "steady",
    "bounded",
    "cheap",
    "reliable",
    "simulated",
    "deterministic",
    "sample",
    "example",
    "detail",
    "step",
    "plan",
    "check",
]


class RequestError(ValueError):
    """A request body vLLM would refuse."""


@dataclass(frozen=True)
class ChatRequest:
    """The parts of an OpenAI chat completion request that the simulator honours."""

    messages: list[dict[str, Any]]
    max_tokens: int | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class Completion:
    """One answer: reasoning tokens, content tokens, and the usage they add up to."""

    reasoning: list[str]
    content: list[str]
    prompt_tokens: int
    finish_reason: str

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def parse_chat_request(body: object) -> ChatRequest:
    """Check a `/v1/chat/completions` body; raises :class:`RequestError` when it is unusable."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("every message must be an object with a string role")
    max_tokens = parse_max_tokens(body, "max_completion_tokens", "max_tokens")
    stream, include_usage = parse_stream(body)
    return ChatRequest(messages, max_tokens, stream, include_usage)


def parse_max_tokens(body: dict[str, Any], *keys: str) -> int | None:
    """The first of `keys` that `body` sets, which must be a positive integer; None when none is set."""
    value = next((body[key] for key in keys if body.get(key) is not None), None)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise RequestError(f"{keys[-1]} must be a positive integer")
    return value


def parse_stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """`stream` and `stream_options.include_usage` of a body."""
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise RequestError("stream must be a boolean and stream_options an object")
    return stream, bool(options.get("include_usage", False))


def compose(endpoint: str, request: ChatRequest) -> Completion:
    """The answer of `endpoint` to `request`, derived from a hash of both."""
    rng = _seeded({"endpoint": endpoint, "messages": request.messages})
    reasoning = _words(rng, ["We", " need", " to", " answer", " the", " user."], 6 + rng.randrange(12))
    content = _words(rng, ["Simulated", " answer", " from", f" {endpoint}:"], 8 + rng.randrange(32))
    content[-1] += "."
    finish_reason = "stop"
    if request.max_tokens is not None and request.max_tokens < len(reasoning) + len(content):
        finish_reason = "length"
        reasoning = reasoning[: request.max_tokens]
        content = content[: request.max_tokens - len(reasoning)]
    return Completion(reasoning, content, _prompt_tokens(request.messages), finish_reason)


def compose_text(endpoint: str, prompt: str | list[int], max_tokens: int | None) -> Completion:
    """The continuation of `prompt` (text, or token ids) by `endpoint`: plain text, no reasoning, as a
    completion without a chat template is."""
    rng = _seeded({"endpoint": endpoint, "prompt": prompt})
    content = _words(rng, [" Simulated", " continuation", " from", f" {endpoint}:"], 8 + rng.randrange(32))
    content[-1] += "."
    finish_reason = "stop"
    if max_tokens is not None and max_tokens < len(content):
        finish_reason, content = "length", content[:max_tokens]
    prompt_tokens = len(prompt) if isinstance(prompt, list) else max(1, len(prompt.split()))
    return Completion([], content, prompt_tokens, finish_reason)


def _seeded(seed: dict[str, Any]) -> random.Random:
    seed_text = json.dumps(seed, sort_keys=True, default=str)
    return random.Random(hashlib.sha256(seed_text.encode()).digest())


def _words(rng: random.Random, opening: list[str], extra: int) -> list[str]:
    return opening + [" " + rng.choice(_WORDS) for _ in range(extra)]


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        if content is None:
            text = ""
        else:
            text = content if isinstance(content, str) else json.dumps(content, default=str)
        total += 4 + len(text.split())  # a few tokens of chat template per message
    return total + 2
