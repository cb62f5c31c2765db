"""Shared test helpers: serve an ASGI app on a real loopback socket inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stamina
import structlog
import uvicorn

from crazy_gary.web.server import AppServer


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps its state (the SQLite store) in a directory of its own, never in the home."""
    monkeypatch.setenv("CRAZY_GARY_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.reset_defaults()


@contextlib.asynccontextmanager
async def serve_app(app: Any, http: Any = "auto") -> AsyncIterator[str]:
    """Run `app` under uvicorn on 127.0.0.1:<free port> (its HTTP protocol `http`); yield its base URL."""
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = AppServer(uvicorn.Config(app, http=http, log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def fast_retries() -> Any:
    """stamina without waiting between attempts."""
    with stamina.set_testing(True, attempts=3):
        yield
