"""Deterministic chat answers: the same messages to the same endpoint always get the same text.

A "token" here is one word with its leading space, which is close enough to a real tokenizer
for pacing, `max_tokens` and `usage`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatRequest", "ChatRequestError", "Completion", "compose", "parse_chat_request"]

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


class ChatRequestError(ValueError):
    """A chat completion body vLLM would refuse."""


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
    """Check a `/v1/chat/completions` body; raises :class:`ChatRequestError` when it is unusable."""
    if not isinstance(body, dict):
        raise ChatRequestError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ChatRequestError("every message must be an object with a string role")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ChatRequestError("max_tokens must be a positive integer")
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise ChatRequestError("stream must be a boolean and stream_options an object")
    return ChatRequest(messages, max_tokens, stream, bool(options.get("include_usage", False)))


def compose(endpoint: str, request: ChatRequest) -> Completion:
    """The answer of `endpoint` to `request`, derived from a hash of both."""
    seed_text = json.dumps({"endpoint": endpoint, "messages": request.messages}, sort_keys=True, default=str)
    rng = random.Random(hashlib.sha256(seed_text.encode()).digest())
    reasoning = _words(rng, ["We", " need", " to", " answer", " the", " user."], 6 + rng.randrange(12))
    content = _words(rng, ["Simulated", " answer", " from", f" {endpoint}:"], 8 + rng.randrange(32))
    content[-1] += "."
    finish_reason = "stop"
    if request.max_tokens is not None and request.max_tokens < len(reasoning) + len(content):
        finish_reason = "length"
        reasoning = reasoning[: request.max_tokens]
        content = content[: request.max_tokens - len(reasoning)]
    return Completion(reasoning, content, _prompt_tokens(request.messages), finish_reason)


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
