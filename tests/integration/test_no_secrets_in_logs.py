"""`crazy-gary serve` logs JSON lines, one per request, and never a token or a key, whatever callers send."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from .conftest import (
    OPERATOR_KEY,
    USER_KEY,
    VIEWER_KEY,
    Process,
    start_server,
    start_simulator,
    wait_until,
)

HF_TOKEN = "hf_TestSecretToken123"
WRONG_KEY = "wrong-key-not-configured"
CHAT = {"model": "120b", "messages": [{"role": "user", "content": "Why do large models sleep?"}]}


@pytest.fixture
def secret_simulator() -> Iterator[Process]:
    process = start_simulator(token=HF_TOKEN)
    yield process
    process.stop()


class Output:
    """Reads a process's output as it comes, so a full pipe never stalls it, and keeps every line."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.popen.stdout is not None
        for line in self.process.popen.stdout:
            self.process.output.append(line.rstrip("\n"))

    def stop(self) -> list[str]:
        """Stop the process as Ctrl-C would; every line it wrote, once it has exited."""
        popen = self.process.popen
        if popen.poll() is None:
            popen.send_signal(signal.SIGINT)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        self.thread.join(5)
        return self.process.output

    def announced_key(self) -> str:
        """The operator key `serve` generated and printed in its `?token=` address."""
        line: str = wait_until(
            lambda: next((text for text in self.process.output if "/?token=" in text), None), timeout=10
        )
        return line.rsplit("?token=", 1)[1].strip()


def send(server: Process, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx2.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx2.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def log_lines(output: list[str]) -> list[dict[str, Any]]:
    """The JSON log lines (the start-up announcement on stdout is not one)."""
    return [json.loads(line) for line in output if line.startswith("{")]


def check_one_line_each(lines: list[dict[str, Any]], answers: list[httpx2.Response]) -> None:
    """Each answer's X-Request-ID names exactly one request line, with its path (no query) and status."""
    requests = [line for line in lines if line["event"] == "request"]
    for answer in answers:
        request_id = answer.headers["x-request-id"]
        matching = [line for line in requests if line["request_id"] == request_id]
        assert len(matching) == 1, (answer.request.url, matching)
        (line,) = matching
        assert line["path"] == answer.request.url.path
        assert "?" not in line["path"]
        assert line["status"] == answer.status_code
        assert line["method"] == answer.request.method
        assert line["logger"] == "crazy_gary.access"
        assert line["timestamp"].endswith("Z")


def test_configured_keys_and_hf_token_never_logged(secret_simulator: Process) -> None:
    """Good and bad requests leave one JSON line each and no HF token or API key in the output."""
    server = start_server(secret_simulator, HUGGINGFACE_API_KEY=HF_TOKEN, ENDPOINT_AUTO_SLEEP="900")
    output = Output(server)
    try:
        answers = [
            send(server, "GET", "/api/endpoints/status", VIEWER_KEY),
            send(server, "GET", "/api/endpoints/status", WRONG_KEY),
            send(server, "GET", f"/?token={OPERATOR_KEY}"),
            send(server, "GET", "/no/such/route", OPERATOR_KEY),
            send(server, "GET", f"/api/endpoints/status?token={HF_TOKEN}", HF_TOKEN),
            send(server, "POST", "/api/endpoints/wake/120b?wait=true", OPERATOR_KEY),
            send(server, "POST", "/v1/chat/completions", USER_KEY, json=CHAT),
            send(server, "POST", "/v1/chat/completions", USER_KEY, content=b"{not json"),
            send(server, "GET", "/api/endpoints/audit", USER_KEY, headers={"X-Request-ID": "trace-42"}),
        ]
        assert [answer.status_code for answer in answers] == [200, 401, 200, 404, 401, 200, 200, 400, 200]
        assert answers[6].headers["x-crazy-gary-served-by"] == "120b"
        assert answers[8].headers["x-request-id"] == "trace-42"
        shown = [
            *answers,
            send(server, "GET", "/metrics", VIEWER_KEY),
            send(server, "GET", "/api/endpoints/audit?limit=1000", VIEWER_KEY),
            send(server, "GET", "/api/endpoints/costs", VIEWER_KEY),
        ]
    finally:
        text = "\n".join(output.stop())
        server.stop()

    for secret in (HF_TOKEN, OPERATOR_KEY, USER_KEY, VIEWER_KEY, WRONG_KEY):
        assert secret not in text, f"{secret} leaked into the server's output"
        for answer in shown:
            assert secret not in answer.text + str(answer.headers), f"{secret} leaked into {answer.url.path}"
    lines = log_lines(text.splitlines())
    check_one_line_each(lines, answers)
    by_id = {line["request_id"]: line for line in lines if line["event"] == "request"}
    assert by_id[answers[0].headers["x-request-id"]]["actor"].startswith("viewer:")
    assert by_id[answers[1].headers["x-request-id"]]["actor"] is None
    chat = by_id[answers[6].headers["x-request-id"]]
    assert (chat["actor"], chat["served_by"], chat["fallback_reason"]) == ("app", "120b", None)
    wake_id = answers[5].headers["x-request-id"]
    started = [line for line in lines if line["event"] == "operation_started" and line["endpoint"] == "120b"]
    assert [(line["actor"], line["request_id"]) for line in started] == [("ops", wake_id)]
    assert any(line["event"] == "operation_finished" and line["success"] for line in lines)
    assert any(line["event"] == "state_changed" and line["status"] == "running" for line in lines)


def test_generated_operator_key_never_logged(secret_simulator: Process) -> None:
    """The key `serve` generates is printed once for the operator, and is in no log line."""
    server = start_server(secret_simulator, HUGGINGFACE_API_KEY=HF_TOKEN, CRAZY_GARY_API_KEYS="")
    output = Output(server)
    try:
        key = output.announced_key()
        answers = [
            send(server, "GET", f"/?token={key}"),
            send(server, "GET", "/api/endpoints/status", key),
            send(server, "GET", "/nothing/here", key),
            send(server, "POST", "/api/endpoints/wake/20b", key),
            send(server, "GET", f"/api/endpoints/status?token={key}", "not-the-key-at-all"),
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 404, 202, 401]
    finally:
        printed = output.stop()
        server.stop()

    assert [line for line in printed if key in line] == [f"  {server.url}/?token={key}"]
    assert not [line for line in printed if HF_TOKEN in line]
    lines = log_lines(printed)
    check_one_line_each(lines, answers)
    assert {line.get("actor") for line in lines if line["event"] == "request"} >= {"generated-operator"}
