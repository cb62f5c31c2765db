"""`audit` and `watch` against the fake server, and how tables write times and countdowns."""

from __future__ import annotations

import pytest

from crazy_gary.cli.render import format_ago, format_countdown
from crazy_gary.cli.watch import parse_events

from ._fake import (
    NOW,
    OPERATOR_KEY,
    FakeServer,
    run,
)


def test_audit_shows_entries_as_text(server: FakeServer) -> None:
    """`audit` asks with its filters and prints the entries, brackets in sentences kept."""
    result = run("audit", "--limit", "5", "--model", "120b")
    assert result.exit_code == 0
    assert server.seen[-1].query == {"limit": "5", "model_type": "120b"}
    assert "ops" in result.stdout
    assert "[the]" in result.stdout


def test_watch_prints_a_table_per_event(server: FakeServer) -> None:
    """`watch`, piped, prints the table from the snapshot, then again for each event that changed it,
    and stops after --count tables."""
    result = run("watch", "--count", "3")
    assert result.exit_code == 0, result.output
    tables = result.stdout.split("endpoint ")[1:]  # each table starts with its header
    assert len(tables) == 3
    assert "sleeping" in tables[0]
    assert "running" in tables[1].split("20b")[1].split("\n")[0]  # 20b's row after the state event
    assert "primary_starting" in tables[2]  # the request, under the table
    assert [s.path for s in server.seen] == ["/api/endpoints/events"]
    assert server.seen[0].authorization == f"Bearer {OPERATOR_KEY}"  # the environment's key


def test_watch_with_a_refused_key_ends_with_the_reason(server: FakeServer) -> None:
    """A key the server refuses ends `watch` at once with the server's sentence and status 1."""
    result = run("watch", "--key", "wrong")
    assert result.exit_code == 1
    assert "the server refused the key" in result.stderr


def test_parse_events_follows_the_format() -> None:
    """Blank lines end events; data lines join with newlines; comments and empty events are skipped."""
    lines = [": hello", "", "event: a", 'data: {"x":', "data: 1}", "", "data: 2", "", "event: empty", ""]
    assert list(parse_events(lines)) == [("a", {"x": 1}), ("message", 2)]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(845, "14:05"), (0, "0:00"), (3700, "61:40"), (59.9, "0:59"), (None, "—")]
)
def test_countdown_is_minutes_and_seconds(seconds: float | None, shown: str) -> None:
    """The auto-sleep countdown reads as m:ss, rounded down, and — when there is none."""
    assert format_countdown(seconds) == shown


@pytest.mark.parametrize(
    ("ago", "shown"),
    [(30, "30 s ago"), (180, "3 min ago"), (7300, "2 h ago"), (90_000, "1 d ago"), (-20, "just now")],
)
def test_last_activity_reads_as_time_ago(ago: int, shown: str) -> None:
    """Last activity reads as a rough time ago; a server clock slightly ahead reads `just now`."""
    assert format_ago(NOW - ago, now=NOW) == shown
    assert format_ago(None, now=NOW) == "—"


def test_an_operation_under_way_is_not_shown_failed() -> None:
    """An audit entry accepted and not finished (`success: null`) reads `under way`, not `failed`."""
    import io

    from rich.console import Console

    from crazy_gary.cli.render import audit_table

    entry = {"id": 1, "timestamp": 1_700_000_000, "actor": "ops", "operation": "wake", "model_type": "120b"}
    console = Console(file=io.StringIO(), width=200)
    console.print(audit_table([{**entry, "success": None, "error": None, "details": {}}]))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "under way" in text and "failed" not in text
