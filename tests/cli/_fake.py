"""A tiny Starlette app answering the REST API's routes with canned JSON in the shapes of the
README's "REST API", on a real loopback socket; it records what each request carried, so the CLI's
tests check both ends of the wire."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typer.testing import CliRunner, Result

from crazy_gary import cli

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


def error_answer(status: int, sentence: str, code: str) -> JSONResponse:
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
            return error_answer(401, "Missing or invalid API key.", "unauthorized")
        if request.method == "POST" and auth != f"Bearer {OPERATOR_KEY}":
            return error_answer(403, "This action needs the operator role.", "forbidden")
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
            return error_answer(404, f"Unknown endpoint '{model}'.", "endpoint_not_found")
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
