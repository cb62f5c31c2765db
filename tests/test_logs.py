"""Structured logs: the redacting chain, the JSON shape, the request line and the operation lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
from typing import Any

import pytest
import structlog

from crazy_gary.config import Settings
from crazy_gary.core.manager import ManagerEvent
from crazy_gary.logs import REDACTED, Redactor, configure_logging, flush_logs, get_logger, log_manager_event
from crazy_gary.web.auth import Caller
from crazy_gary.web.logging_middleware import RequestLogMiddleware

HF_TOKEN = "hf_UnitTestToken0123456789"
OPERATOR_KEY = "operator-key-abcdef123"
EXTRA_KEY = "generated-KEY_xyz789"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("CRAZY_GARY_CONFIG", "CRAZY_GARY_API_KEYS", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return Settings(
        HUGGINGFACE_API_KEY=HF_TOKEN,
        CRAZY_GARY_SIMULATE=False,
        CRAZY_GARY_API_KEYS=f"ops:operator:{OPERATOR_KEY},viewer:viewer-key-000111",
    )


@pytest.fixture
def output(settings: Settings, restore_logging: None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(settings, secrets=[EXTRA_KEY], stream=stream, json=True)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_token_in_message_is_redacted(output: io.StringIO) -> None:
    """The HF token, an API key and an extra secret in the event text become [redacted]."""
    get_logger("crazy_gary.test").info(f"calling with {HF_TOKEN}, {OPERATOR_KEY} and {EXTRA_KEY}")
    assert lines(output)[0]["event"] == f"calling with {REDACTED}, {REDACTED} and {REDACTED}"


def test_secret_in_nested_values_is_redacted(output: io.StringIO) -> None:
    """Secrets in dict values, lists and arbitrary objects are redacted; other values stay typed."""

    class Holder:
        def __str__(self) -> str:
            return f"holder of {OPERATOR_KEY}"

    get_logger("crazy_gary.test").info(
        "nested", headers={"authorization": [f"x {HF_TOKEN}"]}, thing=Holder(), count=3, ok=True
    )
    line = lines(output)[0]
    assert line["headers"] == {"authorization": [f"x {REDACTED}"]}
    assert line["thing"] == f"holder of {REDACTED}"
    assert line["count"] == 3
    assert line["ok"] is True


def test_traceback_text_is_redacted(output: io.StringIO) -> None:
    """An exception's traceback (its cause too) is formatted to text, then redacted."""
    log = get_logger("crazy_gary.test")
    try:
        try:
            raise ConnectionError(f"GET https://api/x?token={EXTRA_KEY} refused")
        except ConnectionError as exc:
            raise RuntimeError(f"token {HF_TOKEN} rejected") from exc
    except RuntimeError:
        log.exception("call failed")
    line = lines(output)[0]
    assert line["level"] == "error"
    assert "Traceback" in line["exception"]
    assert f"?token={REDACTED} refused" in line["exception"]
    assert f"token {REDACTED} rejected" in line["exception"]
    assert HF_TOKEN not in json.dumps(line)
    assert EXTRA_KEY not in json.dumps(line)


def test_library_records_are_redacted(output: io.StringIO) -> None:
    """A stdlib record of a library, with %-args and exc_info, goes through the same chain."""
    try:
        raise OSError(f"https://host/v2?token={OPERATOR_KEY}")
    except OSError:
        logging.getLogger("httpx2").error("request to %s failed", f"/x?token={OPERATOR_KEY}", exc_info=True)
    line = lines(output)[0]
    assert line["logger"] == "httpx2"
    assert line["event"] == f"request to /x?token={REDACTED} failed"
    assert OPERATOR_KEY not in line["exception"]


def test_unformattable_record_leaves_a_note_not_its_arguments(output: io.StringIO) -> None:
    """A record whose %-arguments do not fit is reported by type, without its message or arguments."""
    root = logging.getLogger()
    # pytest's capture handlers would raise on the bad record: only ours may see it
    others = [handler for handler in root.handlers if type(handler).__module__ != "crazy_gary.logs"]
    for handler in others:
        root.removeHandler(handler)
    try:
        logging.getLogger("aiohttp.client").warning("two %s %s", f"Bearer {OPERATOR_KEY}")
    finally:
        for handler in others:
            root.addHandler(handler)
    flush_logs()
    text = output.getvalue()
    assert "a WARNING record of aiohttp.client could not be written: TypeError" in text
    assert OPERATOR_KEY not in text


def test_stuck_output_never_blocks_the_caller(restore_logging: None) -> None:
    """With nobody reading the pipe, logging goes on: lines past the queue are dropped, then counted."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe, os.fdopen(read_end, "rb") as reader:
        configure_logging(stream=pipe, json=True)
        log = get_logger("crazy_gary.test")
        for number in range(12_000):  # far more than the pipe and the queue hold
            log.info("filler", number=number, padding="x" * 100)
        drained: list[bytes] = []
        drainer = threading.Thread(target=lambda: drained.extend(iter(lambda: reader.read1(65536), b"")))
        drainer.start()
        log.info("after")
        flush_logs()
        log.info("after the drain")
        flush_logs()
        configure_logging(stream=io.StringIO())  # replaces (and closes) the pipe's handler
        pipe.close()
        drainer.join(5)
    events = [json.loads(line)["event"] for line in b"".join(drained).decode().splitlines()]
    assert any(re.fullmatch(r"\d+ log lines were dropped: the log output did not keep up", e) for e in events)
    assert events[-1] == "after the drain"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk-unknown.token_1", f"Authorization: Bearer {REDACTED}"),
        ("GET /?token=abc123&limit=5 HTTP/1.1", f"GET /?token={REDACTED}&limit=5 HTTP/1.1"),
        ("key hf_AbCdEfGh12345 leaked", f"key {REDACTED} leaked"),
        ("postgresql://gary:hunter22@db:5432/cg", f"postgresql://gary:{REDACTED}@db:5432/cg"),
        ("send Authorization: Bearer <key>.", "send Authorization: Bearer <key>."),
        ("hf_state hf_short", "hf_state hf_short"),
    ],
)
def test_lookalike_secrets_are_redacted(text: str, expected: str) -> None:
    """Bearer credentials, ?token= values, hf_ tokens and URL passwords go even when unknown."""
    assert Redactor().redact(text) == expected


def test_added_and_url_encoded_secrets_are_redacted() -> None:
    """A secret added later is redacted, as itself and URL-encoded; short ones are ignored."""
    redactor = Redactor(["abc"])
    redactor.add("pass word/1", None, "")
    assert redactor.redact("a pass word/1 b pass%20word%2F1 c pass%20word/1 abc") == (
        f"a {REDACTED} b {REDACTED} c {REDACTED} abc"
    )


def test_json_line_shape(output: io.StringIO) -> None:
    """One JSON object a line: ISO UTC timestamp, level, logger and event first, then the fields."""
    get_logger("crazy_gary.test").warning("something_happened", endpoint="120b")
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    first, second = lines(output)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", first["timestamp"])
    assert (first["level"], first["logger"], first["event"]) == (
        "warning",
        "crazy_gary.test",
        "something_happened",
    )
    assert first["endpoint"] == "120b"
    assert (second["level"], second["logger"], second["event"]) == (
        "warning",
        "uvicorn.error",
        "from uvicorn",
    )


def test_console_format_on_a_terminal(restore_logging: None) -> None:
    """On a terminal the lines are structlog's console format, still redacted."""
    stream = Terminal()
    configure_logging(secrets=[EXTRA_KEY], stream=stream)
    get_logger("crazy_gary.test").info("hello", key=EXTRA_KEY)
    flush_logs()
    text = stream.getvalue()
    assert not text.startswith("{")
    assert "hello" in text
    assert EXTRA_KEY not in text
    assert REDACTED in text


def test_configure_twice_does_not_duplicate(restore_logging: None) -> None:
    """A second configure_logging replaces the first handler: one line per record, to the new stream."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first, json=True)
    configure_logging(stream=second, json=True)
    logging.getLogger("crazy_gary.test").warning("once")
    assert [line["event"] for line in lines(second)] == ["once"]
    assert first.getvalue() == ""


def test_library_handlers_are_replaced(restore_logging: None) -> None:
    """Handlers uvicorn or huggingface_hub installed are removed, so their records come out once, as JSON."""
    own = logging.StreamHandler(io.StringIO())
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(own)
    uvicorn_logger.propagate = False
    stream = io.StringIO()
    configure_logging(stream=stream, json=True)
    logging.getLogger("uvicorn.error").warning("shutting down")
    assert own not in uvicorn_logger.handlers
    assert [line["event"] for line in lines(stream)] == ["shutting down"]


def test_request_id_is_carried_by_context(output: io.StringIO) -> None:
    """A request id bound in structlog.contextvars appears on stdlib and structlog lines alike."""
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        logging.getLogger("crazy_gary.core.manager").warning("wake failed")
        get_logger("crazy_gary.test").info("inside")
    get_logger("crazy_gary.test").info("outside")
    assert [line.get("request_id") for line in lines(output)] == ["req-1", "req-1", None]


def test_manager_events_become_lines(output: io.StringIO) -> None:
    """Operation start and end and state changes are logged at info with their fields, a circuit
    opening at warning."""
    log_manager_event(ManagerEvent("operation", "120b", operation="wake", actor="ops"))
    log_manager_event(ManagerEvent("state", "120b", status="starting", hf_state="initializing"))
    log_manager_event(
        ManagerEvent(
            "operation_done", "120b", operation="wake", actor="ops", success=False, error="timed out"
        )
    )
    log_manager_event(ManagerEvent("circuit_open", "120b"))
    started, state, finished, opened = lines(output)
    assert (opened["level"], opened["event"], opened["endpoint"]) == ("warning", "circuit_opened", "120b")
    assert {k: started[k] for k in ("level", "event", "operation", "endpoint", "actor")} == {
        "level": "info",
        "event": "operation_started",
        "operation": "wake",
        "endpoint": "120b",
        "actor": "ops",
    }
    assert (state["event"], state["status"], state["hf_state"]) == (
        "state_changed",
        "starting",
        "initializing",
    )
    assert (finished["event"], finished["success"], finished["error"]) == (
        "operation_finished",
        False,
        "timed out",
    )


# -- the request line ---------------------------------------------------------------------------


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    """Send one GET through `app` as a server would; return the messages it sent."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path.partition("?")[0],
        "query_string": path.partition("?")[2].encode(),
        "headers": headers or [],
        "client": ("10.0.0.7", 51234),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answering(
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"{}",
    actor: str | None = None,
    served: dict[str, str] | None = None,
) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if actor:
            scope["state"]["caller"] = Caller("operator", actor)
        scope["state"].update(served or {})  # as the gateway notes who serves a chat
        get_logger("crazy_gary.inner").info("inside_request")
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": body})

    return app


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["logger"] == "crazy_gary.access"]


async def test_request_line_fields(output: io.StringIO) -> None:
    """One line per request: id, method, path without query, status, duration, client and actor."""
    app = RequestLogMiddleware(answering(actor="ops"))
    sent = await call(app, f"/api/endpoints/status?token={OPERATOR_KEY}")
    (line,) = request_lines(output)
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    assert line["method"] == "GET"
    assert line["path"] == "/api/endpoints/status"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["client"] == "10.0.0.7"
    assert line["actor"] == "ops"
    assert "served_by" not in line
    assert (b"x-request-id", line["request_id"].encode()) in sent[0]["headers"]
    inner = next(entry for entry in lines(output) if entry["event"] == "inside_request")
    assert inner["request_id"] == line["request_id"]
    assert OPERATOR_KEY not in output.getvalue()


async def test_sane_request_id_is_kept_and_echoed(output: io.StringIO) -> None:
    """A short plain X-Request-ID is used and echoed; anything else gets a new id."""
    app = RequestLogMiddleware(answering(headers=[(b"x-request-id", b"upstream")]))
    sent = await call(app, "/healthz", [(b"x-request-id", b"lb-7f3a.1")])
    await call(app, "/healthz", [(b"x-request-id", b"has spaces and " + b"x" * 80)])
    kept, replaced = request_lines(output)
    assert kept["request_id"] == "lb-7f3a.1"
    assert [v for k, v in sent[0]["headers"] if k == b"x-request-id"] == [b"lb-7f3a.1"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced["request_id"])


async def test_chat_line_names_who_served(output: io.StringIO) -> None:
    """A chat's line names who served and why from the request's state, never from its answer."""
    served = {"served_by": "20b", "fallback_reason": "primary_sleeping"}
    await call(RequestLogMiddleware(answering(served=served)), "/v1/chat/completions")
    await call(RequestLogMiddleware(answering()), "/v1/chat/completions")
    held = RequestLogMiddleware(
        answering(
            headers=[(b"x-crazy-gary-served-by", b"pending")],
            body=b": waiting for 120b\n\n: served-by 120b\n\n",
            served={"served_by": "20b", "fallback_reason": "primary_starting"},
        )
    )
    await call(held, "/v1/chat/completions")
    fallback, unserved, stream = request_lines(output)
    assert (fallback["served_by"], fallback["fallback_reason"]) == ("20b", "primary_sleeping")
    assert (unserved["served_by"], unserved["fallback_reason"]) == (None, None)
    assert (stream["served_by"], stream["fallback_reason"]) == ("20b", "primary_starting")


async def test_failing_app_is_logged_as_500(output: io.StringIO) -> None:
    """An exception escaping the app is logged as a 500 at error level, then re-raised."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError(f"boom {HF_TOKEN}")

    with pytest.raises(RuntimeError):
        await call(RequestLogMiddleware(broken), "/api/endpoints/status")
    (line,) = request_lines(output)
    assert (line["level"], line["status"], line["error"]) == ("error", 500, "RuntimeError")
