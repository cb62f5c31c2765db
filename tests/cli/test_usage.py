"""`usage` against the fake server: a row per key and endpoint, quota windows, periods, JSON."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from starlette.responses import JSONResponse, Response

from ._fake import (
    USAGE,
    VIEWER_KEY,
    FakeServer,
    error_answer,
    run,
)


@pytest.fixture
def _twelve_hours_ahead_of_utc() -> Iterator[None]:
    """The local time zone 12 h ahead of UTC, so a time shown in local time would not read as UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "XYZ-12"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _cells(text: str, first: str) -> list[list[str]]:
    """The words of each line of `text` whose first word is `first`."""
    return [line.split() for line in text.splitlines() if line.split()[:1] == [first]]


@pytest.mark.usefixtures("_twelve_hours_ahead_of_utc")
def test_usage_table_shows_each_key_per_endpoint_with_totals(server: FakeServer) -> None:
    """`usage` asks /api/usage and prints a row per key and endpoint, the idle cost as `(idle)`, and a
    total per endpoint whose cost is the sum of its rows; the period reads in UTC."""
    result = run("usage")
    assert result.exit_code == 0, result.output
    assert [(s.method, s.path, s.query) for s in server.seen] == [("GET", "/api/usage", {})]
    assert "usage from 2026-11-27 17:20 UTC to 2026-11-28 17:20 UTC" in result.stdout
    rows = [
        line.split()[:2] for line in result.stdout.splitlines() if line.split()[1:2] in (["120b"], ["20b"])
    ]
    assert rows == [
        ["alice", "120b"], ["bob", "120b"], ["(idle)", "120b"], ["total", "120b"],
        ["bob", "20b"], ["(idle)", "20b"], ["total", "20b"],
    ]  # fmt: skip
    assert _cells(result.stdout, "alice")[0] == ["alice", "120b", "12", "3,400", "9,100", "$1.2346"]
    assert _cells(result.stdout, "(idle)") == [
        ["(idle)", "120b", "0", "0", "0", "$0.5000"],
        ["(idle)", "20b", "0", "0", "0", "$0.0456"],
    ]
    assert _cells(result.stdout, "total") == [
        ["total", "120b", "15", "4,000", "10,600", "$1.9846"],
        ["total", "20b", "40", "12,000", "30,500", "$0.0579"],
    ]


@pytest.mark.usefixtures("_twelve_hours_ahead_of_utc")
def test_usage_shows_each_quota_window(server: FakeServer) -> None:
    """Under the usage, a row per key and quota window: used / limit, remaining, the reset in UTC."""
    result = run("usage")
    assert result.exit_code == 0, result.output
    quotas = [
        words for words in _cells(result.stdout, "alice") + _cells(result.stdout, "bob") if "/" in words
    ]
    assert quotas == [
        ["alice", "day", "1,500", "/", "2,000", "500", "2026-11-29", "00:00", "UTC"],
        ["alice", "month", "1,500", "/", "50,000", "48,500", "2026-12-01", "00:00", "UTC"],
        ["bob", "day", "1,000", "/", "1,000", "0", "2026-11-29", "00:00", "UTC"],
    ]


def test_usage_json_prints_the_answer_as_it_is(server: FakeServer) -> None:
    """`usage --json` prints the server's whole answer: period, rows and quotas."""
    result = run("usage", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == USAGE


def test_usage_without_rows_says_so(server: FakeServer) -> None:
    """A period with no usage at all prints one plain line, not an empty table."""
    server.answer = JSONResponse({**USAGE, "rows": [], "quotas": {}})
    result = run("usage")
    assert result.exit_code == 0
    assert result.stdout == "no usage in this period\n"


def test_usage_since_and_until_reach_the_query(server: FakeServer) -> None:
    """--since and --until in Unix seconds are sent as they are."""
    result = run("usage", "--since", "1795800000", "--until", "1795886400")
    assert result.exit_code == 0, result.output
    assert server.seen[-1].query == {"since": "1795800000", "until": "1795886400"}


def test_usage_since_a_time_ago(server: FakeServer) -> None:
    """`--since 7d` is sent as the Unix time seven days before now, and --until is left to the server."""
    before = int(time.time())
    result = run("usage", "--since", "7d")
    after = int(time.time())
    assert result.exit_code == 0, result.output
    assert list(server.seen[-1].query) == ["since"]
    assert before - 7 * 86_400 <= int(server.seen[-1].query["since"]) <= after - 7 * 86_400


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--since", "yesterday"), "error: --since takes Unix seconds or a time ago such as 24h or 7d"),
        (("--until", "-5"), "error: --until takes Unix seconds"),
        (("--since", "1795886400", "--until", "1795800000"), "error: --since must be before --until"),
    ],
    ids=["word", "negative", "reversed"],
)
def test_usage_bad_period_is_a_usage_error(server: FakeServer, args: tuple[str, ...], expected: str) -> None:
    """A period that is not Unix seconds or a time ago, or that ends before it starts, exits 2 unasked."""
    result = run("usage", *args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(expected)
    assert server.seen == []


@pytest.mark.parametrize(
    ("key", "answer", "expected"),
    [
        ("wrong", None, "error: the server refused the key: Missing or invalid API key."),
        (
            VIEWER_KEY,
            error_answer(403, "This key may not read usage.", "forbidden"),
            "error: This key may not read usage.",
        ),
    ],
    ids=["401", "403"],
)
def test_usage_refused_is_one_line_and_exit_1(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, key: str, answer: Response | None, expected: str
) -> None:
    """A refused key or role ends `usage` with exit 1 and one stderr line carrying the server's sentence."""
    monkeypatch.setenv("CRAZY_GARY_KEY", key)
    server.answer = answer
    result = run("usage")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(expected)
    assert result.stdout == ""
    assert server.seen[-1].path == "/api/usage"
