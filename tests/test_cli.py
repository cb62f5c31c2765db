"""The `crazy-gary` command line, driven against a real HTTP server on a loopback socket.

The server is a tiny Starlette app answering the REST API's routes with canned JSON in the shapes
of the README's "REST API"; it records what each request carried, so the tests check both ends of
the wire.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner, Result

from crazy_gary import cli
from crazy_gary.cli import endpoints
from crazy_gary.cli.render import format_ago, format_countdown
from crazy_gary.cli.watch import parse_events
from crazy_gary.errors import ConfigError

OPERATOR_KEY = "op-secret"
VIEWER_KEY = "view-secret"
NOW = int(time.time())
ENDPOINTS: dict[str, dict[str, Any]] = {
    "120b": {
        "status": "running",
        "url": "https://endpoints.huggingface.co/demo/endpoints/gpt-oss-120b",
        "last_activity": NOW - 180,
        "wake_time": NOW - 600,
        "sleep_time": None,
        "auto_sleep_in": 845,
        "hf_state": "running",
    },
    "20b": {
        "status": "sleeping",
        "url": "https://endpoints.huggingface.co/demo/endpoints/gpt-oss-20b",
        "last_activity": None,
        "wake_time": None,
        "sleep_time": NOW - 3600,
        "auto_sleep_in": None,
        "hf_state": "scaledToZero",
    },
}


def _error(status: int, sentence: str, code: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": sentence, "code": code}, status_code=status)


@dataclass
class Seen:
    """One request as the fake server received it."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class FakeServer:
    """Canned REST API answers on loopback; `answer` overrides the next answers, `states` scripts polls."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answer: Response | None = None
    states: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.seen.clear()
        self.answer = None
        self.states.clear()

    async def handle(self, request: Request) -> Response:
        auth = request.headers.get("authorization")
        self.seen.append(Seen(request.method, request.url.path, dict(request.query_params), auth))
        if self.answer is not None:
            return self.answer
        if auth not in (f"Bearer {OPERATOR_KEY}", f"Bearer {VIEWER_KEY}"):
            return _error(401, "Missing or invalid API key.", "unauthorized")
        if request.method == "POST" and auth != f"Bearer {OPERATOR_KEY}":
            return _error(403, "This action needs the operator role.", "forbidden")
        return self._route(request)

    def _route(self, request: Request) -> Response:
        if request.url.path == "/api/usage":
            return JSONResponse(USAGE)
        path = request.url.path.removeprefix("/api/endpoints")
        if path == "/status":
            return JSONResponse({"success": True, "endpoints": self._endpoints()})
        if path == "/audit":
            return JSONResponse({"success": True, "entries": [AUDIT_ENTRY]})
        if path == "/events":
            return Response(EVENTS, media_type="text/event-stream")
        action, _, model = path.strip("/").partition("/")
        after = "stopping" if action == "sleep" else "starting"
        if not model:
            results = {key: {"success": True, "status": after} for key in ENDPOINTS}
            return JSONResponse({"success": True, "results": results}, status_code=202)
        if model not in ENDPOINTS:
            return _error(404, f"Unknown endpoint '{model}'.", "endpoint_not_found")
        if request.query_params.get("wait") == "true":
            return JSONResponse({"success": True, "model_type": model, "status": "running"})
        return JSONResponse({"success": True, "model_type": model, "status": after}, status_code=202)

    def _endpoints(self) -> dict[str, Any]:
        if not self.states:
            return ENDPOINTS
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {key: {**endpoint, "status": state} for key, endpoint in ENDPOINTS.items()}


_RUNNING_20B = {**ENDPOINTS["20b"], "status": "running", "auto_sleep_in": 900}
_REQUEST = {"model": "120b", "served_by": "20b", "fallback_reason": "primary_starting", "status": 200}
# A stream as the server sends it: a snapshot, a heartbeat, two events (data split over two lines in
# one), then the end (the watch reconnects).
EVENTS = (
    f"retry: 2000\nevent: snapshot\ndata: {json.dumps({'endpoints': ENDPOINTS, 'requests': []})}\n\n"
    ": heartbeat\n\n"
    f"event: state\ndata: {json.dumps({'model_type': '20b', 'endpoint': _RUNNING_20B})}\n\n"
    "event: request\n"
    + "".join(f"data: {line}\n" for line in json.dumps(_REQUEST, indent=1).splitlines())
    + "\n"
)

AUDIT_ENTRY = {
    "id": 7,
    "timestamp": NOW - 60,
    "actor": "ops",
    "operation": "wake",
    "model_type": "120b",
    "success": False,
    "error": "Hugging Face refused [the] resume.",
    "details": {},
}

DAY_ENDS = 1_795_910_400  # 2026-11-29 00:00 UTC
MONTH_ENDS = 1_796_083_200  # 2026-12-01 00:00 UTC
USAGE: dict[str, Any] = {
    "success": True,
    "since": 1_795_800_000,  # 2026-11-27 17:20 UTC
    "until": 1_795_886_400,
    "rows": [
        {
            "key": "bob",
            "model_type": "20b",
            "requests": 40,
            "prompt_tokens": 12_000,
            "completion_tokens": 30_500,
            "cost": 0.0123,
        },
        {
            "key": None,
            "model_type": "120b",
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.5,
        },
        {
            "key": "alice",
            "model_type": "120b",
            "requests": 12,
            "prompt_tokens": 3400,
            "completion_tokens": 9100,
            "cost": 1.234567,
        },
        {
            "key": None,
            "model_type": "20b",
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0456,
        },
        {
            "key": "bob",
            "model_type": "120b",
            "requests": 3,
            "prompt_tokens": 600,
            "completion_tokens": 1500,
            "cost": 0.25,
        },
    ],
    "quotas": {
        "bob": {"tokens_per_day": {"limit": 1000, "used": 1000, "remaining": 0, "resets_at": DAY_ENDS}},
        "alice": {
            "tokens_per_day": {"limit": 2000, "used": 1500, "remaining": 500, "resets_at": DAY_ENDS},
            "tokens_per_month": {"limit": 50_000, "used": 1500, "remaining": 48_500, "resets_at": MONTH_ENDS},
        },
    },
}


@pytest.fixture(scope="module")
def _running_server() -> Iterator[FakeServer]:
    fake = FakeServer()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def server(_running_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    _running_server.reset()
    monkeypatch.setenv("CRAZY_GARY_URL", _running_server.url)
    monkeypatch.setenv("CRAZY_GARY_KEY", OPERATOR_KEY)
    return _running_server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRAZY_GARY_URL", "CRAZY_GARY_KEY", "CRAZY_GARY_SIM_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> Result:
    """Invoke the CLI in-process; a traceback would surface as a non-SystemExit exception."""
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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
    server.answer = _error(504, "120b did not run within 300 s.", "wake_timeout")
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
    server.answer = _error(429, "Too many requests.", "rate_limited")
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


def test_serve_loads_settings_and_runs_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` passes --simulate through to the settings and host/port to the server."""
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "crazy_gary.config.load_settings", lambda *, simulate: calls.append(("load", simulate)) or "S"
    )
    monkeypatch.setattr(
        "crazy_gary.web.server.run_server", lambda s, *, host, port: calls.append(("run", (s, host, port)))
    )
    assert run("serve", "--port", "9000").exit_code == 0
    assert run("serve", "--simulate", "--host", "0.0.0.0").exit_code == 0
    assert run("serve", "--no-simulate").exit_code == 0
    assert calls == [
        ("load", None),
        ("run", ("S", "127.0.0.1", 9000)),
        ("load", True),
        ("run", ("S", "0.0.0.0", 8000)),
        ("load", False),
        ("run", ("S", "127.0.0.1", 8000)),
    ]


def test_serve_config_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConfigError stops `serve` with its sentence on stderr and exit 2."""

    def refuse(*, simulate: bool | None) -> None:
        raise ConfigError("HUGGINGFACE_API_KEY: required unless simulating")

    monkeypatch.setattr("crazy_gary.config.load_settings", refuse)
    result = run("serve")
    assert result.exit_code == 2
    assert result.stderr == "error: HUGGINGFACE_API_KEY: required unless simulating\n"


def test_simulate_loads_its_config_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`simulate --token T --port P` hands T to the config and the config, host and port to the simulator."""
    calls: list[Any] = []
    monkeypatch.setattr("crazy_gary.config.load_simulator_config", lambda *, token: f"config:{token}")
    monkeypatch.setattr(
        "crazy_gary.simulator.run_simulator", lambda c, *, host, port: calls.append((c, host, port))
    )
    assert run("simulate", "--token", "hf_x", "--port", "8011").exit_code == 0
    assert run("simulate").exit_code == 0
    assert calls == [("config:hf_x", "127.0.0.1", 8011), ("config:None", "127.0.0.1", 8010)]


def test_simulate_port_in_use_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that cannot be bound ends `simulate` with one line and exit 1, not a traceback."""

    def taken(config: object, *, host: str, port: int) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr("crazy_gary.config.load_simulator_config", lambda *, token: "config")
    monkeypatch.setattr("crazy_gary.simulator.run_simulator", taken)
    result = run("simulate", "--port", "8010")
    assert result.exit_code == 1
    assert result.stderr == "error: cannot listen on 127.0.0.1:8010: Address already in use\n"


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
            _error(403, "This key may not read usage.", "forbidden"),
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
