"""`crazy-gary serve`: run the app under uvicorn, with the simulator in-process when simulating."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import socket
import sys
from collections.abc import Callable

import uvicorn

from crazy_gary.clock import SystemClock
from crazy_gary.config import SIMULATOR_TOKEN, ApiKey, Settings, load_simulator_config
from crazy_gary.hf.inference import quiet_retry_hooks
from crazy_gary.logs import configure_logging
from crazy_gary.web.app import create_app
from crazy_gary.web.bounds import bounded_protocol

__all__ = ["AppServer", "run_server", "serve"]


class AppServer(uvicorn.Server):
    """uvicorn's server, ending the app's event streams and held requests as it begins to stop.

    uvicorn waits for every open response to finish before it runs the app's shutdown, and an event
    stream never finishes by itself: without this, stopping would wait for every dashboard to leave.
    A request held for a cold start would keep it up to the wake timeout; it gets its 503 (a held
    stream its error event) at once instead. The connections drain as `bounds` describes.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self.config.app, "state", None)
        hub = getattr(state, "events", None)
        if hub is not None:
            hub.close()
        engine = getattr(state, "engine", None)
        if engine is not None:
            engine.router.stop_holding()
        await super().shutdown(sockets)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it every keep-alive answer waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until cancelled; prints the address (with a login token when one was generated)."""
    sock = _listen(host, port)
    # read before uvicorn takes the socket: its event loop may own the descriptor from then on
    bound = sock.getsockname()[:2]
    extra_keys: tuple[ApiKey, ...] = ()
    generated = None
    if not settings.api_keys:
        generated = secrets.token_urlsafe(24)
        extra_keys = (ApiKey(role="operator", key=generated, name="generated-operator"),)
    clock = SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        management_url = None
        if settings.simulating:
            from crazy_gary.simulator import SimulatorServer  # not loaded by a gateway of real endpoints

            simulator = await stack.enter_async_context(
                SimulatorServer(load_simulator_config(token=SIMULATOR_TOKEN), clock)
            )
            management_url = simulator.management_url
        # After the embedded simulator's uvicorn set up its own log handlers, so ours replace them.
        configure_logging(settings, secrets=[generated])
        quiet_retry_hooks()  # retries are counted from the attempts each answer carries
        app = create_app(settings, clock=clock, management_url=management_url, extra_keys=extra_keys)
        bounded = bounded_protocol(
            settings.max_header_bytes, settings.header_timeout, settings.max_connections
        )
        config = uvicorn.Config(
            app, http=bounded, log_level="warning", access_log=False, lifespan="on", log_config=None
        )
        server = AppServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            _freeze_startup_objects()
            _announce(bound, settings, generated, management_url)
        await task


def _freeze_startup_objects() -> None:
    """Move everything made during start-up (modules, the app, settings) out of the collector's way.

    Every full collection of the cyclic garbage collector otherwise walks those hundreds of thousands
    of objects, which live as long as the process: under load that was about 15 % of the gateway's CPU
    (measured with gc.callbacks; bench/ has the throughput). Garbage made before is collected first.
    `crazy-gary serve` turns the collector off for start-up; it is back on from here, less often:
    with thousands of requests held for a cold start, each collection walked all of their objects
    (at the default thresholds, most of serve's CPU while 10,000 streams came in; bench/README.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_COLLECTOR_THRESHOLDS)
    gc.enable()


# Objects made between two young collections, and young (then middle) collections per older one:
# Python's defaults are (700, 10, 10).
_COLLECTOR_THRESHOLDS = (50_000, 50, 10)


def _announce(
    bound: tuple[str, int], settings: Settings, token: str | None, simulator_url: str | None
) -> None:
    host, port = bound
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    address = f"http://{shown}:{port}/"
    lines = [f"crazy-gary is serving {len(settings.endpoints)} endpoints at {address}"]
    if simulator_url:
        lines.append(f"  simulating Hugging Face at {simulator_url}")
    if token:
        lines.append("  no CRAZY_GARY_API_KEYS set; this operator key was generated for this run:")
        lines.append(f"  {address}?token={token}")
    print("\n".join(lines), flush=True)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: the same asyncio API, about twice the speed on the hot path."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return None
    return uvloop.new_event_loop


def run_server(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Blocking `serve`; Ctrl-C stops it quietly."""
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(settings, host, port))
    sys.stdout.flush()
