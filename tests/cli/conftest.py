"""The fake REST API server, started once per module, and an environment without the CLI's variables."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from ._fake import OPERATOR_KEY, FakeServer


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
