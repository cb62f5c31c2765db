"""Secrets never written: a structlog processor replacing every known secret, and everything that
looks like one, with ``[redacted]``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter "secrets" would blank out ordinary words without protecting anything
_MAX_DEPTH = 8
_MAX_KNOWN = 4096  # redacted texts kept (then forgotten all at once)
_MAX_KNOWN_LENGTH = 256  # longer texts (messages, tracebacks) are redacted each time

# What a secret looks like even when nobody told us about it; a named group is a prefix to keep.
_LOOKALIKES = (
    r"hf_[A-Za-z0-9]{8,}",
    # "Bearer <key>" (but not the help text "Bearer <key>."): the token runs to a space or a quote.
    r"(?P<bearer>\b(?i:bearer)\s+)[^\s\"'<>\\]+",
    r"(?P<query>[?&;](?i:token|access_token|api_key|apikey|key)=)[^&;#\s\"'\\]+",
    r"(?P<password>://[^/\s:@\"']+:)[^@\s/\"']+(?P<at>@)",  # postgresql://user:password@host/db
)


class Redactor:
    """A structlog processor replacing secrets with ``[redacted]`` in the event and every value.

    Literal secrets (given at construction or through :meth:`add`) are replaced wherever they
    appear, as themselves and URL-encoded; so is anything looking like a Hugging Face token
    (``hf_…``), a ``Bearer`` credential, a ``?token=`` query value or a URL's password.
    Values that are not strings, numbers or containers are turned into their ``str`` first.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        # The pattern and the texts it has redacted, kept together: most values of a line (paths,
        # methods, names, field names) recur on every line, and a pattern search costs a microsecond.
        self._state: tuple[re.Pattern[str], dict[str, str]] = (re.compile("|".join(_LOOKALIKES)), {})
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Redact these secrets too (None, empty and very short values are ignored)."""
        found = set(self._secrets)
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET:
                found.update({secret, quote(secret, safe=""), quote(secret)})
        if found == self._secrets:
            return
        literals = sorted(found, key=len, reverse=True)  # the longest first: no half-replaced secret
        self._secrets = frozenset(found)
        # One pattern, one pass per string; one assignment, so a thread formatting a record
        # meanwhile uses the old pattern and its texts, or the new pattern and none.
        self._state = (re.compile("|".join([*map(re.escape, literals), *_LOOKALIKES])), {})

    def redact(self, text: str) -> str:
        """`text` with every secret replaced."""
        pattern, known = self._state
        redacted = known.get(text)
        if redacted is None:
            redacted = pattern.sub(_replacement, text)
            if len(text) <= _MAX_KNOWN_LENGTH:
                if len(known) >= _MAX_KNOWN:
                    known.clear()
                known[text] = redacted
        return redacted

    def clean(self, value: Any, depth: int = 0) -> Any:
        """`value` with every string in it redacted; containers are walked, other objects become text."""
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth < _MAX_DEPTH:
            if isinstance(value, dict):
                return {
                    self.clean(key, depth + 1): self.clean(item, depth + 1) for key, item in value.items()
                }
            if isinstance(value, (list, tuple, set, frozenset)):
                return [self.clean(item, depth + 1) for item in value]
        if isinstance(value, (bytes, bytearray)):
            return self.redact(bytes(value).decode("utf-8", "replace"))
        try:
            return self.redact(str(value))
        except Exception:  # noqa: BLE001 - a value that cannot be shown must not lose the line
            return f"<unprintable {type(value).__name__}>"

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {self.redact(str(key)): self.clean(value) for key, value in event_dict.items()}


def _replacement(match: re.Match[str]) -> str:
    prefix = match["bearer"] or match["query"] or match["password"] or ""
    return f"{prefix}{REDACTED}{match['at'] or ''}"
