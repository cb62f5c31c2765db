"""The bytes of one server-sent event, made once for every stream that sends it."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

__all__ = ["Frame", "frame"]


class Frame(NamedTuple):
    """One event: its name, its data, and the bytes every stream sends for it."""

    name: str
    data: dict[str, Any]
    wire: bytes


def frame(name: str, data: dict[str, Any], retry: int | None = None) -> bytes:
    """The SSE bytes of one event (`data` as one line of JSON), as `fastapi.sse` frames them."""
    retry_line = "" if retry is None else f"retry: {retry}\n"
    return f"event: {name}\ndata: {_json(data)}\n{retry_line}\n".encode()


def _json(data: dict[str, Any]) -> str:
    """One line of JSON a browser's JSON.parse reads: a value JSON has no name for becomes text, and a
    float that is not finite null (as FastAPI's own encoder did for these events)."""
    try:
        return json.dumps(data, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(data), allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
