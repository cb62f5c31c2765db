"""What became of each request of the soak test, and the running count of it.

Every request ends in exactly one of four outcomes:

- `answered`: a complete 2xx answer (a stream that ended with `data: [DONE]`, or, for the Responses
  API, with its `response.completed` event);
- `clear_error`: a complete error answer the caller can act on: JSON with `code` (crazy-gary's error
  shape) or `error` (an endpoint's own, passed through), and for 429 and 503 a `Retry-After`; a 200
  stream that ends with an error event is one too;
- `refused`: the connection was refused before anything was sent (serve is down, or stopping);
- `lost`: anything else. Reset or closed without an answer, a body cut short, a stream without its
  end, a timeout, an error without the error shape or without its `Retry-After`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Outcome", "Tally", "classify_answer", "classify_failure", "percentile"]


class Outcome(StrEnum):
    ANSWERED = "answered"
    CLEAR_ERROR = "clear_error"
    REFUSED = "refused"
    LOST = "lost"


_NEEDS_RETRY_AFTER = frozenset({429, 503})


def _error_code(body: bytes) -> str | None:
    """The error's code when `body` is in an error shape (crazy-gary's or an endpoint's), else None."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not ("code" in parsed or "error" in parsed):
        return None
    error = parsed.get("error")
    code = parsed.get("code") or (error.get("code") if isinstance(error, dict) else None)
    return str(code or "error")


def _event_data(text: str) -> list[object]:
    """The `data:` payloads of an event stream, parsed where they are JSON."""
    items: list[object] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            try:
                items.append(json.loads(payload))
            except ValueError:
                items.append(payload)
    return items


def _stream_outcome(body: bytes) -> tuple[Outcome, str]:
    """A 200 stream: answered when it reached its end, a clear error when it ended with an error
    event, lost when it stopped anywhere else."""
    text = body.decode("utf-8", "replace")
    data = _event_data(text)
    if "event: error" in text or any(isinstance(item, dict) and "error" in item for item in data):
        return Outcome.CLEAR_ERROR, "stream error event"
    last = data[-1] if data else None
    if last == "[DONE]" or (isinstance(last, dict) and last.get("type") == "response.completed"):
        return Outcome.ANSWERED, "stream"
    return Outcome.LOST, "stream cut before its end"


def classify_answer(
    status: int, headers: Mapping[str, str], body: bytes, *, stream: bool
) -> tuple[Outcome, str]:
    """The outcome of a request that got a whole HTTP answer (headers and body), and a short reason.

    `headers` must be looked up case-insensitively (aiohttp's are)."""
    if status < 400:
        if stream and headers.get("content-type", "").startswith("text/event-stream"):
            return _stream_outcome(body)
        return Outcome.ANSWERED, str(status)
    code = _error_code(body)
    if code is None:
        return Outcome.LOST, f"{status} without the error shape"
    if status in _NEEDS_RETRY_AFTER and "retry-after" not in headers:
        return Outcome.LOST, f"{status} without Retry-After"
    return Outcome.CLEAR_ERROR, f"{status} {code}"


def classify_failure(exc: BaseException, *, sent: bool) -> tuple[Outcome, str]:
    """The outcome of a request that raised `exc` instead of answering; `sent` says whether its
    connection was made (a refused connection sent nothing, so lost nothing)."""
    if not sent and isinstance(exc, ConnectionRefusedError | OSError) and _refused(exc):
        return Outcome.REFUSED, "connection refused"
    detail = str(exc).strip()
    return Outcome.LOST, type(exc).__name__ + (f" ({detail})" if detail else "")


def _refused(exc: BaseException) -> bool:
    errno = getattr(exc, "errno", None)
    return isinstance(exc, ConnectionRefusedError) or errno == 111


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Tally:
    """Outcomes and latencies so far; `lost_reasons` says what each lost request met."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    lost_reasons: Counter[str] = field(default_factory=Counter)
    error_reasons: Counter[str] = field(default_factory=Counter)  # clear errors, by status or event
    kinds: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    lost_log: list[tuple[float, str]] = field(default_factory=list)  # when (monotonic), what

    def record(self, kind: str, outcome: Outcome, reason: str, elapsed_ms: float, at: float = 0.0) -> None:
        self.outcomes[outcome] += 1
        self.kinds[kind] += 1
        if outcome is Outcome.CLEAR_ERROR:
            self.error_reasons[reason] += 1
        if outcome is Outcome.LOST:
            self.lost_reasons[f"{kind}: {reason}"] += 1
            self.lost_log.append((at, f"{kind}: {reason} after {elapsed_ms:.0f} ms"))
        if outcome in (Outcome.ANSWERED, Outcome.CLEAR_ERROR):
            self.latencies_ms.append(elapsed_ms)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def __getitem__(self, outcome: Outcome) -> int:
        return self.outcomes[outcome]
