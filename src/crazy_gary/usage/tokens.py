"""The tokens an answer used, read from the answer itself: `usage` of a plain answer, the final
usage event of a stream (chat and completions streams are asked for it, and the extra event is taken
out again when the caller did not ask for it), `response.completed` of a Responses stream.

Knows no web framework; cheap on the hot path: a body is parsed only when it mentions `usage`, and a
stream's events are looked into only when they do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamMeter", "TokenCount", "tokens_of_answer", "tokens_of_usage"]

_USAGE = b'"usage"'
_BOUNDARY = re.compile(rb"(\r?\n\r?\n)")
_DECODER = json.JSONDecoder()
MAX_EVENT = 1 << 20  # bytes without an event's end after which a stream is passed on unwatched


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one answer: read (prompt, input) and written (completion, output, reasoning included)."""

    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def tokens_of_usage(usage: Any) -> TokenCount | None:
    """A `usage` object of any of the APIs: `prompt_tokens`/`completion_tokens` (chat, completions,
    embeddings) or `input_tokens`/`output_tokens` (Responses); None when it is not one."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return TokenCount(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")))
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return TokenCount(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
    return None


def tokens_of_answer(content: bytes) -> TokenCount | None:
    """The usage of a whole JSON answer, or None when it has none. Only the object after the last
    `"usage":` is parsed (OpenAI's answers end with it; an embeddings answer may be megabytes)."""
    at = content.rfind(_USAGE)
    if at < 0:
        return None
    colon = content.find(b":", at + len(_USAGE))
    if colon < 0:
        return None
    try:
        usage, _ = _DECODER.raw_decode(content[colon + 1 :].decode().lstrip())
    except (ValueError, RecursionError):
        return None
    return tokens_of_usage(usage)


class StreamMeter:
    """Watches an event stream go by for its usage; with `strip_usage`, takes out the usage-only
    event (`choices` empty) that crazy-gary asked for on the caller's behalf.

    Without `strip_usage` every chunk goes on at once and only a copy of the current event is kept
    to be read. With it, chunks are cut at event boundaries: a partial event waits for its end (a
    caller cannot use half an event), so an event is never split between what is kept and what is
    taken out. Either way no more than `MAX_EVENT` bytes wait: a stream that is not made of events
    is passed on as it is.
    """

    __slots__ = ("_pending", "strip_usage", "tokens")

    def __init__(self, *, strip_usage: bool = False) -> None:
        self.strip_usage = strip_usage
        self.tokens: TokenCount | None = None
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        """What of `chunk` goes on to the caller now."""
        searched = max(0, len(self._pending) - 3)  # a boundary may start in what waited
        self._pending += chunk
        data = self._pending
        cut = max(_end_of(data, b"\n\n", searched), _end_of(data, b"\r\n\r\n", searched))
        if cut == 0:
            if len(data) > MAX_EVENT:  # no event ends here: passed on (or no longer watched)
                self._pending = bytearray()
                return chunk if not self.strip_usage else bytes(data)
            return chunk if not self.strip_usage else b""
        ready = bytes(data[:cut])
        del data[:cut]
        at = ready.rfind(_USAGE)
        if at < 0:
            return chunk if not self.strip_usage else ready
        # only the last event that mentions usage is read: the final usage, or the newest of a
        # stream that sends it with every chunk
        start = max(_end_of(ready[:at], b"\n\n", 0), _end_of(ready[:at], b"\r\n\r\n", 0))
        event_end = _BOUNDARY.search(ready, at)
        assert event_end is not None, "ready ends with a blank line"
        kept = self._look(ready[start : event_end.start()], event_end.group())
        return chunk if not self.strip_usage else ready[:start] + kept + ready[event_end.end() :]

    def rest(self) -> bytes:
        """What is left when the stream ends (an event without its blank line)."""
        rest, self._pending = bytes(self._pending), bytearray()
        return rest if self.strip_usage else b""

    def _look(self, event: bytes, end: bytes) -> bytes:
        """One whole event and its blank line `end`, given back unless taken out."""
        if _USAGE in event:
            payload = _payload(event)
            if payload is not None:
                usage = payload.get("usage")
                response = payload.get("response")
                if usage is None and isinstance(response, dict):  # Responses: response.completed
                    usage = response.get("usage")
                tokens = tokens_of_usage(usage)
                if tokens is not None:
                    self.tokens = tokens
                    if self.strip_usage and payload.get("choices") == []:
                        return event[: len(event) - len(event.lstrip(b"\r\n"))]  # blank lines before it stay
        return event + end


def _end_of(data: bytes | bytearray, boundary: bytes, start: int) -> int:
    """Where the last event of `data` ending with `boundary` (searched from `start`) ends; 0 if none."""
    at = data.rfind(boundary, start)
    return 0 if at < 0 else at + len(boundary)


def _payload(event: bytes) -> dict[str, Any] | None:
    """The JSON of an event's `data:` lines, when it is an object."""
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        payload = json.loads(b"\n".join(lines))
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None
