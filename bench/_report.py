"""The result table: one row per measure, direct beside through crazy-gary, with the target."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Report", "Row", "added_ms", "mb", "ms", "per_second"]

NOT_MEASURED = "-"


@dataclass
class Row:
    """One measure. `verdict` is None when the target could not be judged (not measured)."""

    measure: str
    direct: str = NOT_MEASURED
    gateway: str = NOT_MEASURED
    added: str = ""
    target: str = ""
    verdict: bool | None = None


@dataclass
class Report:
    """Rows and the notes that explain them."""

    title: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def all_met(self) -> bool:
        return all(row.verdict is True for row in self.rows if row.target)

    def render(self) -> str:
        header = Row("measure", "direct", "through crazy-gary", "added", "target")
        table = [header, *self.rows]
        columns = ("measure", "direct", "gateway", "added", "target")
        widths = [max(len(getattr(row, name)) for row in table) for name in columns]
        lines = [*self.title, ""]
        for index, row in enumerate(table):
            cells = [getattr(row, name).ljust(width) for name, width in zip(columns, widths, strict=True)]
            mark = "" if index == 0 or not row.target else _mark(row.verdict)
            lines.append("  ".join([*cells, mark]).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.notes:
            lines += ["", "notes:"]
            lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        data = {"title": self.title, "rows": [asdict(row) for row in self.rows], "notes": self.notes}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _mark(verdict: bool | None) -> str:
    if verdict is None:
        return "?"
    return "✓" if verdict else "✗"


def ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:.3f} ms"


def added_ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:+.3f} ms"


def per_second(value: float) -> str:
    return f"{value:,.0f} req/s"


def mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:.1f} MB"
