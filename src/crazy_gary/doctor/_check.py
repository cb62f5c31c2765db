"""One finding of `crazy-gary doctor`, and how it is shown: a line, or part of one JSON object."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MARKS", "Check", "Level", "error", "ok", "render", "report", "warn"]

Level = Literal["ok", "warning", "error"]
MARKS: dict[Level, str] = {"ok": "✓", "warning": "!", "error": "✗"}


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, what was found and, unless ok, what to do."""

    check: str
    level: Level
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        """Whether this finding lets `serve` serve (a warning does)."""
        return self.level != "error"

    def to_dict(self) -> dict[str, Any]:
        return dict(check=self.check, ok=self.ok, level=self.level, detail=self.detail, fix=self.fix)


def ok(name: str, detail: str) -> Check:
    """A finding that is fine."""
    return Check(name, "ok", detail)


def warn(name: str, detail: str, fix: str) -> Check:
    """Serving works, but something costs money or surprises; `fix` says what to do."""
    return Check(name, "warning", detail, fix)


def error(name: str, detail: str, fix: str) -> Check:
    """Something cannot serve; `fix` says what to do."""
    return Check(name, "error", detail, fix)


def render(check: Check) -> str:
    """One line: the mark, what was checked and found, and what to do unless it is fine."""
    line = f"{MARKS[check.level]} {check.check}: {check.detail}"
    return f"{line} → {check.fix}" if check.fix and check.level != "ok" else line


def report(checks: Iterable[Check]) -> dict[str, Any]:
    """The `--json` object: `ok` when no check is an error, and every check."""
    found = list(checks)
    return {"ok": all(check.ok for check in found), "checks": [check.to_dict() for check in found]}
