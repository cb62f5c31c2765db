"""Traces of requests to replay: CSV with a header, or JSON lines, columns found by name.

`timestamp` (ISO 8601, naive times being UTC, or Unix seconds; Azure's `TIMESTAMP` too), `model`
(an endpoint key; None when absent), `prompt_tokens` and `completion_tokens` (Azure's
`ContextTokens` and `GeneratedTokens` too), `stream`. Anything else is ignored. A trace that cannot
be read raises TraceError with one line naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crazy_gary.errors import CrazyGaryError

__all__ = ["TraceError", "TraceRequest", "read_trace"]

_TIME = ("timestamp", "TIMESTAMP", "time")
_PROMPT = ("prompt_tokens", "ContextTokens")
_COMPLETION = ("completion_tokens", "GeneratedTokens")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})


class TraceError(CrazyGaryError):
    """A trace that cannot be read: the message is one line naming where and what."""

    code = "invalid_trace"


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace: when it arrived (Unix seconds), the endpoint it asked for, its tokens."""

    at: float
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False


def read_trace(path: Path) -> list[TraceRequest]:
    """The requests of the trace at `path`, oldest first (ties in the file's order)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    if not text.strip():
        raise TraceError(f"{path}: the trace holds no request")
    rows = _json_lines(path, text) if text.lstrip().startswith("{") else _csv_rows(path, text)
    requests = [_request(path, line, row) for line, row in rows]
    if not requests:
        raise TraceError(f"{path}: the trace holds no request")
    return sorted(requests, key=lambda request: request.at)


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not any(name in header for name in _TIME):
        raise TraceError(
            f"{path} line 1: the header needs a 'timestamp' column (it has {', '.join(header) or 'none'})"
        )
    for row in reader:
        if None in row:
            raise TraceError(f"{path} line {reader.line_num}: more fields than the header names")
        if any(value for value in row.values()):
            yield reader.line_num, row


def _json_lines(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise TraceError(f"{path} line {number}: not a JSON object") from None
        if not isinstance(row, dict):
            raise TraceError(f"{path} line {number}: not a JSON object")
        yield number, row


def _first(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    return None


def _request(path: Path, line: int, row: Mapping[str, Any]) -> TraceRequest:
    where = f"{path} line {line}"
    raw_time = _first(row, _TIME)
    if raw_time is None:
        raise TraceError(f"{where}: no timestamp")
    model = _first(row, ("model",))
    return TraceRequest(
        at=_seconds(where, raw_time),
        model=None if model is None else str(model),
        prompt_tokens=_tokens(where, _first(row, _PROMPT), "prompt_tokens"),
        completion_tokens=_tokens(where, _first(row, _COMPLETION), "completion_tokens"),
        stream=_flag(where, row.get("stream")),
    )


def _seconds(where: str, value: Any) -> float:
    """Unix seconds from a number, or from an ISO 8601 time (UTC unless it says otherwise)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise TraceError(f"{where}: {text[:40]!r} is not a time (ISO 8601 or Unix seconds)") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            seconds = moment.timestamp()
    if not math.isfinite(seconds) or seconds < 0:
        raise TraceError(f"{where}: {value!r} is not a time (ISO 8601 or Unix seconds)")
    return seconds


def _tokens(where: str, value: Any, name: str) -> int:
    if value is None:
        return 0
    try:
        count = int(str(value).strip())
    except ValueError:
        raise TraceError(f"{where}: {name} {str(value)[:20]!r} is not a whole number") from None
    if count < 0:
        raise TraceError(f"{where}: {name} {count} is negative")
    return count


def _flag(where: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TraceError(f"{where}: stream {str(value)[:20]!r} is not true or false")
