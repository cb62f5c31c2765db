"""The request line's short way through the chain (`log_fast`), and the redactor's memory of texts."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from crazy_gary.logs import REDACTED, Redactor, configure_logging, flush_logs, get_logger, log_fast

SECRET = "operator-key-abcdef123"
FIELDS: dict[str, Any] = {
    "method": "POST",
    "path": f"/v1/chat/completions/{SECRET}",
    "status": 200,
    "duration_ms": 0.81,
    "client": "127.0.0.1",
    "actor": "ops",
    "served_by": "120b",
    "fallback_reason": None,
}


@pytest.fixture
def output(restore_logging: None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(secrets=[SECRET], stream=stream, json=True)
    return stream


@contextlib.contextmanager
def handler_alone() -> Iterator[None]:
    """Our handler alone on the root logger, as in `serve`: pytest adds its capture handlers there
    for each test's run."""
    root = logging.getLogger()
    captures = [handler for handler in root.handlers if type(handler).__name__ != "_Handler"]
    for handler in captures:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in captures:
            root.addHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_short_way_writes_the_line_structlog_writes(output: io.StringIO) -> None:
    """Same fields in the same order, the context's request id, the secret redacted: only the time differs."""
    access = logging.getLogger("crazy_gary.test.access")
    tokens = structlog.contextvars.bind_contextvars(request_id="r-1", tenant="blue")
    try:
        with handler_alone():
            get_logger("crazy_gary.test.access").info("request", **FIELDS)
            assert log_fast(access, "info", "request", FIELDS) is True
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    slow, fast = _lines(output)
    assert list(fast) == list(slow)
    assert {**fast, "timestamp": None} == {**slow, "timestamp": None}
    assert list(fast)[:5] == ["timestamp", "level", "logger", "event", "request_id"]
    assert fast["path"] == f"/v1/chat/completions/{REDACTED}" and fast["tenant"] == "blue"
    assert fast["level"] == "info" and fast["logger"] == "crazy_gary.test.access"


def test_another_handler_takes_the_long_way(output: io.StringIO) -> None:
    """A second handler (a test's capture, an operator's own) must see a record: nothing written, False."""
    access = logging.getLogger("crazy_gary.test.access")
    other = logging.StreamHandler(io.StringIO())
    access.addHandler(other)
    try:
        with handler_alone():
            assert log_fast(access, "info", "request", FIELDS) is False
    finally:
        access.removeHandler(other)
    assert _lines(output) == []


def test_a_level_turned_off_writes_nothing(output: io.StringIO) -> None:
    access = logging.getLogger("crazy_gary.test.quiet")
    access.setLevel(logging.WARNING)
    try:
        with handler_alone():
            assert log_fast(access, "info", "request", FIELDS) is True
    finally:
        access.setLevel(logging.NOTSET)
    assert _lines(output) == []


def test_a_secret_added_later_is_redacted_in_a_text_seen_before() -> None:
    """The redactor remembers the texts it has redacted; a new secret makes it forget them."""
    redactor = Redactor()
    text = "/endpoints/late-secret-999/v1/models"
    assert redactor.redact(text) == text
    redactor.add("late-secret-999")
    assert redactor.redact(text) == f"/endpoints/{REDACTED}/v1/models"


def test_many_texts_are_redacted_alike() -> None:
    """Past the texts it keeps, the redactor goes on redacting each (its memory starts again)."""
    redactor = Redactor([SECRET])
    for number in range(10_000):
        assert redactor.redact(f"{number} {SECRET}") == f"{number} {REDACTED}"
    long = "x" * 1000 + SECRET
    assert redactor.redact(long) == redactor.redact(long) == "x" * 1000 + REDACTED
