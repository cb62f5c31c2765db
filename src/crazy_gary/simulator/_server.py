"""Serving the simulator: in the current event loop for tests and `serve`, or blocking for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from crazy_gary.clock import Clock, SystemClock

from ._app import create_simulator_app
from ._config import SimulatorConfig

__all__ = ["SimulatorServer", "run_simulator"]

# Held requests are released at shutdown; answers still paced or streaming get this long,
# then uvicorn cancels them.
_SHUTDOWN_GRACE_SECONDS = 1


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers to whoever owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets that say they
    # are TCP, and without it every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimulatorServer:
    """The simulator served by uvicorn in the running event loop, on a socket it binds itself.

    ``async with SimulatorServer(SimulatorConfig()) as sim:`` then ``sim.management_url`` is the
    value for `HF_ENDPOINTS_API_URL` and ``sim.url + "/endpoints/gpt-oss-120b"`` an endpoint's address.
    Port 0 picks a free port.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.host = host
        self.app = create_simulator_app(config, self.clock)
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not serving; use `async with SimulatorServer(...)`")
        return self._port

    @property
    def url(self) -> str:
        return _origin(self.host, self.port)

    @property
    def management_url(self) -> str:
        return f"{self.url}/v2"

    async def __aenter__(self) -> SimulatorServer:
        self._socket = _bind(self.host, self._requested_port)
        # read now: once uvicorn serves it, the event loop (uvloop) may own the descriptor
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=_SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._socket.close()
                self._task.result()  # raises what stopped start-up
                raise RuntimeError("the simulator stopped during start-up")
            await asyncio.sleep(0.005)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None and self._task is not None:
            self.app.state.world.close()
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
        self._socket, self._server, self._task = None, None, None


def run_simulator(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8010) -> None:
    """Serve the simulator on `host:port` until Ctrl-C, on the real clock."""
    sock = _bind(host, port)
    origin = _origin(host, int(sock.getsockname()[1]))
    app = create_simulator_app(config, SystemClock())
    print(
        f"Simulated Hugging Face at {origin}/v2 (namespace {config.namespace}, token {config.token})",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=_SHUTDOWN_GRACE_SECONDS
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is what the user asked for
    finally:
        sock.close()
