"""The answer of `GET /api/endpoints/status`, built once per change rather than once per read.

A fleet of a thousand endpoints makes an answer of half a megabyte: building it for each of twenty
clients reading it would keep the event loop busy with nothing but that. The answer is kept as bytes
with a strong `ETag` (a hash of those bytes) and built again only when the manager's revision moved
(anything an endpoint's view shows changed) or when it is a second old: countdowns such as
`auto_sleep_in` move with time alone, and are then at most a second behind (README, "REST API").
`If-None-Match` with the current tag answers 304 without a body.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from crazy_gary.clock import Clock
from crazy_gary.core.manager import HuggingFaceEndpointManager

__all__ = ["MAX_AGE", "StatusAnswer", "StatusCache", "matches"]

MAX_AGE = 1.0  # seconds an answer is kept while nothing changes, for the countdowns


@dataclass(frozen=True)
class StatusAnswer:
    body: bytes
    etag: str


class StatusCache:
    """Builds the status answer at most once per change of the manager, and once a second."""

    def __init__(
        self, manager: HuggingFaceEndpointManager, clock: Clock, *, max_age: float = MAX_AGE
    ) -> None:
        self._manager = manager
        self._clock = clock
        self._max_age = max_age
        self._answer: StatusAnswer | None = None
        self._revision = -1
        self._built_at = 0.0
        self.builds = 0  # answers built so far

    def answer(self) -> StatusAnswer:
        """The current answer: the kept one, or a fresh one if something changed or it aged."""
        now = self._clock.monotonic()
        revision = self._manager.revision
        kept = self._answer
        if kept is not None and revision == self._revision and 0 <= now - self._built_at < self._max_age:
            return kept
        views = self._manager.all_status()
        content = {"success": True, "endpoints": {key: view.to_dict() for key, view in views.items()}}
        # as FastAPI's JSONResponse renders it
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        answer = StatusAnswer(body, etag)  # the same bytes, the same tag: a 304 still holds
        self._answer, self._revision, self._built_at = answer, revision, now
        self.builds += 1
        return answer


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
