"""How the CLI shows endpoints, audit entries and usage: Rich tables, short time words, dollars.

Every value from the server goes into a cell as :class:`rich.text.Text`, never as markup, so
brackets in a URL or an error sentence are printed as they are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = [
    "STATE_STYLES",
    "audit_table",
    "format_ago",
    "format_cost",
    "format_countdown",
    "format_time",
    "format_utc",
    "output_console",
    "quota_table",
    "recent_requests_table",
    "screen",
    "state_text",
    "status_table",
    "usage_table",
]

NONE_MARK = "—"
IDLE_MARK = "(idle)"  # the row of an endpoint's billed time that no request used
QUOTA_WINDOWS = (("tokens_per_day", "day"), ("tokens_per_month", "month"))
# Without a terminal Rich assumes 80 columns and folds URLs over many lines; piped output
# (grep, less, a log) reads better with whole lines.
PIPE_WIDTH = 200
STATE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "sleeping": "blue",
    "error": "red",
    "unknown": "magenta",
}


def output_console() -> Console:
    """A console on stdout: the terminal's width on a terminal, long lines anywhere else."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


@contextlib.contextmanager
def screen(console: Console) -> Iterator[Callable[[RenderableType], None]]:
    """A way to show successive tables: redrawn in place on a terminal, one after another elsewhere."""
    if not console.is_terminal:
        yield console.print
        return
    with Live(console=console, auto_refresh=False) as live:
        yield lambda table: live.update(table, refresh=True)


def _number(value: object) -> float | None:
    """`value` when it is a number (and not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def format_countdown(seconds: object) -> str:
    """Seconds left as ``m:ss`` (``845`` → ``14:05``); ``—`` when there is no countdown."""
    value = _number(seconds)
    if value is None:
        return NONE_MARK
    minutes, rest = divmod(max(int(value), 0), 60)
    return f"{minutes}:{rest:02d}"


def format_ago(timestamp: object, now: float) -> str:
    """A Unix time as words relative to `now` (``3 min ago``); ``—`` when there is none."""
    value = _number(timestamp)
    if value is None:
        return NONE_MARK
    elapsed = int(now - value)
    if elapsed < 5:  # also covers a server clock a little ahead of ours
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if elapsed >= size:
            return f"{elapsed // size} {unit} ago"
    return f"{elapsed} s ago"


def format_time(timestamp: object) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; any other value as the server sent it."""
    value = _number(timestamp)
    if value is None:
        return NONE_MARK if timestamp is None else str(timestamp)
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: object) -> Text:
    return Text(NONE_MARK if value is None else str(value))


def state_text(state: object) -> Text:
    """An endpoint state, coloured by what it means for a caller."""
    word = str(state) if state is not None else "unknown"
    return Text(word, style=STATE_STYLES.get(word, ""))


def _hf_says(fields: Mapping[str, Any]) -> str | None:
    """HF's message (`Endpoint waiting to be scheduled`) and its own idle timer, when it has them."""
    parts = [str(fields["hf_message"])] if fields.get("hf_message") else []
    timer = fields.get("hf_scale_to_zero_timeout")
    if isinstance(timer, int):
        parts.append(f"idle timer {timer} min")
    return "; ".join(parts) or None


def status_table(endpoints: Mapping[str, Any], now: float) -> Table:
    """One row per endpoint key: state, HF state, auto-sleep countdown, last activity, url."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("endpoint", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("HF state", no_wrap=True)
    table.add_column("HF says", overflow="fold")
    table.add_column("auto-sleep in", justify="right", no_wrap=True)
    table.add_column("last activity", no_wrap=True)
    table.add_column("url", overflow="fold")
    for key, endpoint in endpoints.items():
        fields = endpoint if isinstance(endpoint, Mapping) else {}
        table.add_row(
            Text(str(key), style="bold"),
            state_text(fields.get("status")),
            _text(fields.get("hf_state")),
            _text(_hf_says(fields)),
            Text(format_countdown(fields.get("auto_sleep_in"))),
            Text(format_ago(fields.get("last_activity"), now)),
            _text(fields.get("url")),
        )
    return table


def recent_requests_table(requests: list[Any]) -> Table:
    """The last chat requests: when, what was asked, who served it and why, status and latency."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("request at", no_wrap=True)
    table.add_column("asked for", no_wrap=True)
    table.add_column("served by", no_wrap=True)
    table.add_column("fallback reason", no_wrap=True)
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("latency", justify="right", no_wrap=True)
    for request in requests:
        fields = request if isinstance(request, Mapping) else {}
        latency = _number(fields.get("latency_ms"))
        table.add_row(
            Text(format_time(fields.get("timestamp"))),
            _text(fields.get("model")),
            _text(fields.get("served_by")),
            _text(fields.get("fallback_reason")),
            _text(fields.get("status")),
            Text(NONE_MARK if latency is None else f"{latency:.0f} ms"),
        )
    return table


def audit_table(entries: list[Any]) -> Table:
    """One row per audit entry, in the server's order (newest first)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in ("id", "time", "actor", "operation", "endpoint"):
        table.add_column(column, no_wrap=True)
    table.add_column("result", overflow="fold")
    for entry in entries:
        fields = entry if isinstance(entry, Mapping) else {}
        table.add_row(
            _text(fields.get("id")),
            Text(format_time(fields.get("timestamp"))),
            _text(fields.get("actor")),
            _text(fields.get("operation")),
            _text(fields.get("model_type")),
            _result_text(fields),
        )
    return table


def _result_text(entry: Mapping[str, Any]) -> Text:
    if entry.get("success") is None:
        return Text("under way", style="yellow")  # accepted, not finished yet
    if entry.get("success"):
        return Text("ok", style="green")
    error = entry.get("error")
    return Text(f"failed: {error}" if error else "failed", style="red")


def format_cost(dollars: object) -> str:
    """A cost in dollars: 4 decimals (``$0.0123``), 2 from $100 up; ``—`` when it is not a number."""
    value = _number(dollars)
    if value is None:
        return NONE_MARK
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:,.4f}"


def format_utc(timestamp: object) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM UTC``; ``—`` when it is not a number."""
    value = _number(timestamp)
    if value is None:
        return NONE_MARK
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _thousands(value: object) -> str:
    """A whole number with thousands separators (``12,500``); ``—`` when it is not a number."""
    number = _number(value)
    return NONE_MARK if number is None else f"{int(number):,}"


def _count(value: object) -> Text:
    return Text(_thousands(value))


def _by_endpoint(rows: list[Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The rows grouped by endpoint (sorted), each group by key with the idle row last."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if isinstance(row, Mapping):
            groups.setdefault(str(row.get("model_type")), []).append(row)
    for group in groups.values():
        group.sort(key=lambda row: (row.get("key") is None, str(row.get("key"))))
    return dict(sorted(groups.items()))


def _total(group: list[Mapping[str, Any]], field: str) -> float:
    return sum(_number(row.get(field)) or 0.0 for row in group)


def usage_table(rows: list[Any], since: object = None, until: object = None) -> Table:
    """One row per key and endpoint (the idle cost as ``(idle)``), then each endpoint's total."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    if since is not None or until is not None:
        table.title = f"usage from {format_utc(since)} to {format_utc(until)}"
        table.title_justify = "left"
    table.add_column("key", no_wrap=True)
    table.add_column("endpoint", no_wrap=True)
    for column in ("requests", "prompt tokens", "completion tokens", "cost"):
        table.add_column(column, justify="right", no_wrap=True)
    fields = ("requests", "prompt_tokens", "completion_tokens")
    for endpoint, group in _by_endpoint(rows).items():
        for row in group:
            key = row.get("key")
            table.add_row(
                Text(IDLE_MARK, style="dim") if key is None else Text(str(key)),
                Text(endpoint),
                *(_count(row.get(field)) for field in fields),
                Text(format_cost(row.get("cost"))),
            )
        table.add_row(
            Text("total", style="bold"),
            Text(endpoint, style="bold"),
            *(_count(_total(group, field)) for field in fields),
            Text(format_cost(_total(group, "cost")), style="bold"),
            end_section=True,
        )
    return table


def quota_table(quotas: Mapping[str, Any]) -> Table:
    """One row per key and quota window: tokens used of the limit, remaining, when the window resets."""
    table = Table(
        title="quotas",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    table.add_column("key", no_wrap=True)
    table.add_column("window", no_wrap=True)
    table.add_column("used / limit", justify="right", no_wrap=True)
    table.add_column("remaining", justify="right", no_wrap=True)
    table.add_column("resets at", no_wrap=True)
    for key, windows in sorted(quotas.items()):
        for field, window in QUOTA_WINDOWS:
            quota = windows.get(field) if isinstance(windows, Mapping) else None
            if not isinstance(quota, Mapping):
                continue
            remaining = _number(quota.get("remaining"))
            table.add_row(
                Text(str(key)),
                Text(window),
                Text(f"{_thousands(quota.get('used'))} / {_thousands(quota.get('limit'))}"),
                Text(_thousands(remaining), style="red" if remaining == 0 else ""),
                Text(format_utc(quota.get("resets_at"))),
            )
    return table
