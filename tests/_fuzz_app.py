"""The app the REST API's fuzz tests call over a real loopback socket, and the error shape they check.

The app runs under uvicorn in a background thread with its own event loop (schemathesis calls are
synchronous), on a `ManualClock` that never moves and with an in-memory management API, so wakes and
sleeps answer at once and nothing here waits on real time. Whatever is sent, the app must never answer
5xx, and every 4xx must be JSON in the error shape of the README's "REST API".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.web import create_app

from .conftest import serve_app
from .core.fakes import FakeManagement

OPERATOR, USER, VIEWER = "op-key-fuzz-123456", "user-key-fuzz-123456", "view-key-fuzz-123456"
WRONG = "not-a-configured-key-0000"
SEED = 20_240_917
REQUEST_TIMEOUT = 10.0  # a hang is a failure, not a stalled run
PUBLIC_PATHS = {"/healthz", "/readyz"}
OPERATOR_PREFIXES = ("/api/endpoints/wake", "/api/endpoints/sleep")
USER_PREFIXES = ("/v1/", "/endpoints/")
SNAKE_CASE = r"^[a-z][a-z0-9_]*$"
MODEL_NAMES = ("120b", "20b", "gpt-oss-120b", "gpt-oss-20b")  # keys and HF names
ENDPOINT_PATHS = ("v1/chat/completions", "v1/models", "health", "info")
UPSTREAM_PATHS: list[str] = []  # every raw path the stand-in endpoint was asked for
REPOSITORIES = ("openai/gpt-oss-120b", "openai/gpt-oss-20b")
MAX_INT64 = 2**63 - 1
ApiCase = schemathesis.Case[Any]


# --- the app, served in a thread --------------------------------------------------------------------


async def _upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in inference endpoint: every chat request gets a small OpenAI answer, streamed or not."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    UPSTREAM_PATHS.append(scope["raw_path"].decode("latin-1"))
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        stream = json.loads(body).get("stream") is True
    except (ValueError, AttributeError):
        stream = False
    answer = {
        "id": "chatcmpl-fuzz",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    if stream:
        content = f"data: {json.dumps(answer)}\n\ndata: [DONE]\n\n".encode()
        media = b"text/event-stream"
    else:
        content, media = json.dumps(answer).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]})
    await send({"type": "http.response.body", "body": content})


class _LoopbackManagement(FakeManagement):
    """The in-memory management API, with endpoint addresses on the stand-in upstream."""

    def __init__(self, clock: ManualClock, states: dict[str, str], upstream: str) -> None:
        super().__init__(clock, states)
        self.upstream = upstream

    def _view(self, name: str) -> UpstreamEndpoint:
        view = super()._view(name)
        if view.url is None:
            return view
        return dataclasses.replace(view, url=f"{self.upstream}/endpoints/{name}")


@dataclasses.dataclass
class LiveApp:
    url: str


def _settings(data_dir: Path) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
            patch.delenv(name, raising=False)
        settings = Settings(
            CRAZY_GARY_SIMULATE=True,
            CRAZY_GARY_API_KEYS=f"ops:operator:{OPERATOR},user:{USER},viewer:{VIEWER}",
            CRAZY_GARY_DATA_DIR=str(data_dir),
            # Nothing may wait on the manual clock (it never moves): a request the running 20b cannot
            # take gets its 503 at once instead of being held.
            CRAZY_GARY_FALLBACK_WAIT=0,
            CRAZY_GARY_MAX_PENDING=0,
            # Thousands of calls from one key: rate limits are not what is fuzzed here.
            CRAZY_GARY_RATE_LIMIT="1000000/minute",
            CRAZY_GARY_MANAGEMENT_RATE_LIMIT="1000000/minute",
        )
        assert set(settings.endpoints) == {"120b", "20b"}
    return settings


@contextlib.contextmanager
def live_app(data_dir: Path) -> Iterator[LiveApp]:
    """The app on 127.0.0.1:<free port>, 120b asleep and 20b running, in a thread of its own."""
    settings = _settings(data_dir)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with serve_app(_upstream) as upstream:
                clock = ManualClock()
                hf = _LoopbackManagement(
                    clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"}, upstream
                )
                app = create_app(settings, clock=clock, management=hf)
                async with serve_app(app) as url:
                    await clock.settle()
                    box["live"], box["loop"], box["stop"] = LiveApp(url), asyncio.get_running_loop(), stop
                    ready.set()
                    await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            raise
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="fuzz-app", daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start within 30 s"
    if "live" not in box:
        raise RuntimeError("the app did not start") from box.get("error")
    try:
        live: LiveApp = box["live"]
        assert httpx2.get(live.url + "/readyz", timeout=REQUEST_TIMEOUT).status_code == 200
        yield live
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "the app did not stop within 30 s"


# --- what every answer must be ----------------------------------------------------------------------


def check_error_shape(status: int, content_type: str, content: bytes) -> dict[str, Any]:
    """An error answer is `{"success": false, "error": "<sentence>", "code": "<snake_case>"}`."""
    assert content_type.startswith("application/json"), (
        f"{status} answer is {content_type}: {content[:200]!r}"
    )
    body = json.loads(content)
    assert isinstance(body, dict), body
    assert body.get("success") is False, body
    assert isinstance(body.get("error"), str), body
    assert body["error"].strip(), body
    assert isinstance(body.get("code"), str), body
    assert re.match(SNAKE_CASE, body["code"]), body
    assert "Traceback" not in body["error"], body
    return body
