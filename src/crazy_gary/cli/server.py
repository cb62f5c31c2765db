"""`crazy-gary serve` and `crazy-gary simulate`: the two commands that run a server in this process.

The settings and the server stack (FastAPI, uvicorn, SQLAlchemy, the simulator) are imported when
one of them runs, not when the CLI loads: the commands that talk to a running server never pay for
them (tests/test_layering.py checks it).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Annotated

import typer

from crazy_gary.cli.client import fail
from crazy_gary.errors import ConfigError

__all__ = ["serve", "simulate"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    simulate: Annotated[
        bool | None,
        typer.Option(
            "--simulate/--no-simulate",
            help="Run against the embedded simulator; by default decided by the settings.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the crazy-gary server: REST API, inference gateway and dashboard."""
    # Start-up makes objects that live as long as the process (modules, the app): the collector's
    # passes over them while they are made are wasted, a fifth of start-up. The server collects
    # once, freezes what start-up made and turns the collector back on when it is listening.
    gc.disable()
    try:
        from crazy_gary.config import load_settings

        try:
            settings = load_settings(simulate=simulate)
        except ConfigError as exc:
            fail(exc.message, exit_code=2)
        from crazy_gary.web.server import run_server  # a bad setting is told before the stack loads

        run_server(settings, host=host, port=port)  # it turns a port it cannot bind into one line
    finally:
        gc.enable()


def simulate(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8010,
    token: Annotated[
        str | None,
        typer.Option(
            help="The one token the simulator accepts [default: CRAZY_GARY_SIM_TOKEN, else hf_simulator].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the stand-in for Hugging Face (management API and endpoints)."""
    from crazy_gary.config import load_simulator_config
    from crazy_gary.simulator import run_simulator

    try:
        config = load_simulator_config(token=token)
    except ConfigError as exc:
        fail(exc.message, exit_code=2)
    with _listen_errors(host, port):
        run_simulator(config, host=host, port=port)


@contextlib.contextmanager
def _listen_errors(host: str, port: int) -> Iterator[None]:
    """Turn a socket that cannot be bound (port taken, address not ours) into one line and exit 1."""
    try:
        yield
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
