"""`status`, `wake` and `sleep` against the fake server: what goes over the wire, what is printed, and errors as one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from starlette.responses import JSONResponse, PlainTextResponse

from crazy_gary.cli import endpoints

from ._fake import (
    ENDPOINTS,
    OPERATOR_KEY,
    VIEWER_KEY,
    FakeServer,
    Seen,
    closed_port_url,
    error_answer,
    run,
)


def test_status_table_shows_each_endpoint_and_state(server: FakeServer) -> None:
    """`status` prints a table with every endpoint, its state, countdown and last activity."""
    result = run("status")
    assert result.exit_code == 0, result.output
    for word in ("120b", "20b", "running", "sleeping", "scaledToZero", "14:05", "—"):
        assert word in result.stdout
    # the canned activity is NOW - 180 s, NOW taken at import: later in a long run it reads older
    assert re.search(r"\b\d+ min ago", result.stdout)
    assert server.seen[-1].method == "GET"
    assert server.seen[-1].path == "/api/endpoints/status"


def test_status_json_prints_the_endpoints_object(server: FakeServer) -> None:
    """`status --json` prints exactly the server's `endpoints` object, parseable by jq."""
    result = run("status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ENDPOINTS


def test_wake_posts_with_the_key_from_the_option(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`wake 120b --key K` posts to the wake route with `Bearer K`, over CRAZY_GARY_KEY, and prints its state."""
    monkeypatch.setenv("CRAZY_GARY_KEY", "stale-key")
    result = run("wake", "120b", "--key", OPERATOR_KEY)
    assert result.exit_code == 0
    assert result.stdout == "120b: starting\n"
    assert server.seen == [Seen("POST", "/api/endpoints/wake/120b", {}, f"Bearer {OPERATOR_KEY}")]


def test_wake_sends_the_key_from_the_environment(server: FakeServer) -> None:
    """Without --key, CRAZY_GARY_KEY is sent as the bearer token."""
    assert run("wake", "120b").exit_code == 0
    assert server.seen[-1].authorization == f"Bearer {OPERATOR_KEY}"


def test_options_before_the_command_work_too(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`crazy-gary --server URL --key K wake 120b` reaches the server with that key."""
    monkeypatch.delenv("CRAZY_GARY_URL")
    monkeypatch.delenv("CRAZY_GARY_KEY")
    assert run("--server", server.url, "--key", OPERATOR_KEY, "wake", "120b").exit_code == 0
    assert server.seen[-1].authorization == f"Bearer {OPERATOR_KEY}"


def test_wake_all_posts_to_the_all_route(server: FakeServer) -> None:
    """`wake --all` posts once to /api/endpoints/wake and prints a line per endpoint."""
    result = run("wake", "--all")
    assert result.exit_code == 0
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/api/endpoints/wake")]
    assert result.stdout.splitlines() == ["120b: starting", "20b: starting"]


def test_sleep_one_endpoint(server: FakeServer) -> None:
    """`sleep 20b` posts to the endpoint's sleep route and prints `stopping`."""
    result = run("sleep", "20b")
    assert result.exit_code == 0
    assert server.seen[-1].path == "/api/endpoints/sleep/20b"
    assert result.stdout == "20b: stopping\n"


def test_sleep_all_posts_to_the_all_route(server: FakeServer) -> None:
    """`sleep --all` posts to /api/endpoints/sleep."""
    assert run("sleep", "--all").exit_code == 0
    assert server.seen[-1].path == "/api/endpoints/sleep"


def test_wake_wait_sends_wait_true(server: FakeServer) -> None:
    """`wake 120b --wait` asks the server to answer once running, and prints `running`."""
    result = run("wake", "120b", "--wait")
    assert result.exit_code == 0
    assert server.seen[-1].query == {"wait": "true"}
    assert result.stdout == "120b: running\n"


def test_wake_wait_timeout_exits_1(server: FakeServer) -> None:
    """A 504 wake timeout ends `wake --wait` with exit 1 and the server's sentence."""
    server.answer = error_answer(504, "120b did not run within 300 s.", "wake_timeout")
    result = run("wake", "120b", "--wait")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: 120b did not run within 300 s."


def test_wake_all_wait_polls_until_running(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`wake --all --wait` posts the wake, then polls the status until every endpoint runs."""
    monkeypatch.setattr(endpoints, "POLL_INTERVAL_SECONDS", 0.01)
    server.states.extend(["starting", "starting", "running"])
    result = run("wake", "--all", "--wait")
    assert result.exit_code == 0, result.output
    assert [s.path for s in server.seen] == ["/api/endpoints/wake"] + ["/api/endpoints/status"] * 3
    assert result.stdout.splitlines() == ["120b: running", "20b: running"]


def test_wake_all_wait_fails_when_an_endpoint_errors(server: FakeServer) -> None:
    """`wake --all --wait` exits 1 when an endpoint ends in `error`."""
    server.states.append("error")
    result = run("wake", "--all", "--wait")
    assert result.exit_code == 1
    assert "120b: error" in result.stdout


@pytest.mark.parametrize(
    ("args", "key", "expected"),
    [
        (("status",), "wrong", "error: the server refused the key: Missing or invalid API key."),
        (("wake", "120b"), VIEWER_KEY, "error: This action needs the operator role."),
        (("wake", "7b"), OPERATOR_KEY, "error: Unknown endpoint '7b'."),
    ],
    ids=["401", "403", "404"],
)
def test_error_answers_exit_1_with_the_servers_sentence(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], key: str, expected: str
) -> None:
    """401, 403 and 404 answers end in exit 1 with one stderr line carrying the server's sentence."""
    monkeypatch.setenv("CRAZY_GARY_KEY", key)
    result = run(*args)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(expected)
    assert result.stdout == ""


def test_refused_key_mentions_how_to_give_one(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 without any key tells the user about --key and CRAZY_GARY_KEY."""
    monkeypatch.delenv("CRAZY_GARY_KEY")
    result = run("status")
    assert result.exit_code == 1
    assert "--key" in result.stderr
    assert "CRAZY_GARY_KEY" in result.stderr
    assert server.seen[-1].authorization is None


def test_other_errors_print_the_error_field(server: FakeServer) -> None:
    """Any other error answer prints its `error` field, with Retry-After when rate limited."""
    server.answer = error_answer(429, "Too many requests.", "rate_limited")
    server.answer.headers["Retry-After"] = "12"
    result = run("wake", "120b")
    assert result.exit_code == 1
    assert result.stderr == "error: Too many requests. (retry after 12 s)\n"


def test_non_json_answer_is_a_clear_line(server: FakeServer) -> None:
    """An answer that is not JSON (say, a proxy's page) ends in exit 1 with one clear line."""
    server.answer = PlainTextResponse("<html>Bad Gateway</html>", status_code=502)
    result = run("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: crazy-gary at http://127.0.0.1:")
    assert "HTTP 502" in result.stderr
    assert "not JSON" in result.stderr


def test_unreachable_server_says_cannot_reach() -> None:
    """A closed port ends in exit 1 with the `cannot reach … crazy-gary serve` line."""
    url = closed_port_url()
    result = run("status", "--server", url)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot reach crazy-gary at {url} (is `crazy-gary serve` running?)\n"


def test_unreachable_server_in_a_real_process_has_no_traceback() -> None:
    """Run as a program, an unreachable server gives exit 1 and exactly one stderr line."""
    code = "from crazy_gary.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "wake", "--all", "--server", closed_port_url()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach crazy-gary at http://127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args", [("wake",), ("sleep",), ("wake", "120b", "--all"), ("sleep", "20b", "--all")]
)
def test_model_and_all_are_exclusive_and_one_is_required(server: FakeServer, args: tuple[str, ...]) -> None:
    """Neither or both of MODEL and --all is a one-line usage error with exit 2, and no request."""
    result = run(*args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert server.seen == []


def test_status_shows_what_hugging_face_says(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `HF says` column carries HF's own message and its idle timer; empty when it has neither."""
    monkeypatch.setenv("COLUMNS", "250")
    pending = {
        **ENDPOINTS["120b"],
        "status": "starting",
        "hf_state": "pending",
        "hf_message": "Endpoint waiting to be scheduled",
        "hf_scale_to_zero_timeout": 75,
    }
    endpoints = {"120b": pending, "20b": ENDPOINTS["20b"]}
    server.answer = JSONResponse({"success": True, "endpoints": endpoints})
    result = run("status")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "HF says" in line)
    (row_120b,) = [line for line in result.stdout.splitlines() if line.split()[:1] == ["120b"]]
    (row_20b,) = [line for line in result.stdout.splitlines() if line.split()[:1] == ["20b"]]
    column = header.index("HF says")
    assert row_120b[column:].startswith("Endpoint waiting to be scheduled; idle timer 75 min")
    assert row_20b[column:].startswith("—")
