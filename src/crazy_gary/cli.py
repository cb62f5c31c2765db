"""The ``crazy-gary`` command: start the server or the simulator, and manage a running server.

Commands that talk to a server find it with ``--server`` (env ``CRAZY_GARY_URL``) and send
``--key`` (env ``CRAZY_GARY_KEY``) as a bearer token. Each may be given before the command
(``crazy-gary --server URL status``) or after it (``crazy-gary status --server URL``).
Every failure is one ``error: …`` line on stderr and a non-zero exit: 1 when the server or the
network failed us, 2 for a bad command line or configuration.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import typer

from crazy_gary._cli_client import DEFAULT_SERVER, ServerClient, fail, require
from crazy_gary.config import load_settings, load_simulator_config
from crazy_gary.errors import ConfigError
from crazy_gary.simulator import run_simulator
from crazy_gary.web.server import run_server

__all__ = ["app", "main"]

API = "/api/endpoints"
SETTLED_STATES = frozenset({"running", "error"})
WAIT_ALL_SECONDS = 600.0
POLL_INTERVAL_SECONDS = 1.0

app = typer.Typer(
    help="Keeps large language models on Hugging Face Inference Endpoints cheap and always answering.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True)
class _Connection:
    """Where the server is and which key to send, as given before the command."""

    server: str
    key: str | None


ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Address of crazy-gary (overrides CRAZY_GARY_URL).", show_default=False),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="API key, sent as a bearer token (overrides CRAZY_GARY_KEY).", show_default=False
    ),
]
ModelArgument = Annotated[
    str | None, typer.Argument(metavar="MODEL", help="Endpoint key, e.g. 120b.", show_default=False)
]
AllOption = Annotated[bool, typer.Option("--all", help="Every configured endpoint.")]


@app.callback()
def _root(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Option("--server", envvar="CRAZY_GARY_URL", help="Address of a running crazy-gary.")
    ] = DEFAULT_SERVER,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", envvar="CRAZY_GARY_KEY", help="API key, sent as a bearer token.", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = _Connection(server=server, key=key)


def _client(ctx: typer.Context, server: str | None, key: str | None) -> ServerClient:
    """A client for the server named after the command, else before it, else by the environment."""
    given: _Connection = ctx.obj if isinstance(ctx.obj, _Connection) else _Connection(DEFAULT_SERVER, None)
    return ServerClient(server or given.server, key or given.key)


@app.command()
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
    try:
        settings = load_settings(simulate=simulate)
    except ConfigError as exc:
        fail(exc.message, exit_code=2)
    run_server(settings, host=host, port=port)  # it turns a port it cannot bind into one line itself


@app.command()
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


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the server's endpoints object as JSON.")
    ] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show every endpoint's state, auto-sleep countdown and last activity."""
    with _client(ctx, server, key) as client:
        endpoints = _read_endpoints(client)
    if as_json:
        typer.echo(json.dumps(endpoints, indent=2, ensure_ascii=False))
    elif not endpoints:
        typer.echo("no endpoints are configured")
    else:
        from crazy_gary._cli_render import output_console, status_table  # rich: not loaded by `serve`

        output_console().print(status_table(endpoints, now=time.time()))


@app.command()
def watch(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between redraws on a terminal (the countdown ticks).")
    ] = 1.0,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after showing this many tables.", show_default=False)
    ] = None,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show the status table, kept current by the server's live events, until Ctrl-C."""
    from crazy_gary._cli_render import output_console, screen
    from crazy_gary._cli_watch import watch_events

    console = output_console()
    # Ctrl-C is how a watch ends, not a failure
    with _client(ctx, server, key) as client, screen(console) as show, contextlib.suppress(KeyboardInterrupt):
        # piped, a table is printed only when something changed; on a terminal it is redrawn every
        # `interval` too, so the countdown runs
        watch_events(client, show, tick=interval if console.is_terminal else None, count=count)


def _read_endpoints(client: ServerClient) -> dict[str, Any]:
    endpoints: dict[str, Any] = require(client.get(f"{API}/status"), "endpoints", dict)
    return endpoints


@app.command()
def wake(
    ctx: typer.Context,
    model: ModelArgument = None,
    all_endpoints: AllOption = False,
    wait: Annotated[bool, typer.Option("--wait", help="Return once running (or failed).")] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Wake one endpoint, or every one with --all; exit 1 if the server says it failed."""
    target = _target(model, all_endpoints)
    with _client(ctx, server, key) as client:
        if target is not None:
            _operate_one(client, "wake", target, wait)
            return
        ok = _wake_all_and_wait(client) if wait else _print_results(client.post(f"{API}/wake"))
    if not ok:
        raise typer.Exit(1)


@app.command()
def sleep(
    ctx: typer.Context,
    model: ModelArgument = None,
    all_endpoints: AllOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Put one endpoint to sleep, or every one with --all; exit 1 if the server says it failed."""
    target = _target(model, all_endpoints)
    with _client(ctx, server, key) as client:
        if target is not None:
            _operate_one(client, "sleep", target, wait=False)
            return
        ok = _print_results(client.post(f"{API}/sleep"))
    if not ok:
        raise typer.Exit(1)


def _target(model: str | None, all_endpoints: bool) -> str | None:
    """The one endpoint named, or None for all of them; exactly one of the two must be given."""
    if model and all_endpoints:
        fail("give either MODEL or --all, not both", exit_code=2)
    if not model and not all_endpoints:
        fail("give the endpoint to act on (MODEL, e.g. 120b) or --all", exit_code=2)
    return model or None


def _operate_one(client: ServerClient, action: str, model: str, wait: bool) -> None:
    """POST the action for one endpoint and print its resulting state; exit 1 unless it did as asked."""
    path = f"{API}/{action}/{quote(model, safe='')}"
    if wait:
        typer.echo(f"waiting for {model} to run…", err=True)
        body = client.post(path, params={"wait": "true"}, waiting=True)
    else:
        body = client.post(path)
    if body.get("success") is False:
        fail(str(body.get("error") or f"the server could not {action} {model}"))
    state = str(body.get("status", "unknown"))
    typer.echo(f"{body.get('model_type', model)}: {state}")
    if wait and state != "running":
        fail(f"{model} is {state}, not running")


def _print_results(body: dict[str, Any]) -> bool:
    """Print one line per endpoint of an all-endpoints answer; True when every one succeeded."""
    results: dict[str, Any] = require(body, "results", dict)
    failed = [name for name, result in results.items() if not _succeeded(result)]
    for name, result in results.items():
        typer.echo(_result_line(name, result))
    if failed:
        typer.echo(f"error: the server could not act on {', '.join(failed)}", err=True)
    return not failed


def _succeeded(result: object) -> bool:
    return isinstance(result, dict) and result.get("success") is not False


def _result_line(name: str, result: object) -> str:
    fields = result if isinstance(result, dict) else {}
    state = fields.get("status") or ("unknown" if _succeeded(result) else "failed")
    error = fields.get("error")
    return f"{name}: {state} ({error})" if error else f"{name}: {state}"


def _wake_all_and_wait(client: ServerClient) -> bool:
    """Wake every endpoint, then poll until each accepted one runs or fails; True when all run."""
    results: dict[str, Any] = require(client.post(f"{API}/wake"), "results", dict)
    accepted = [name for name, result in results.items() if _succeeded(result)]
    states: dict[str, str] = {}
    if accepted:
        typer.echo(f"waiting for {', '.join(accepted)} to run…", err=True)
        states = _poll_until_settled(client, accepted)
    for name, result in results.items():
        typer.echo(f"{name}: {states[name]}" if name in states else _result_line(name, result))
    not_running = [name for name in results if states.get(name) != "running"]
    if not_running:
        listed = ", ".join(f"{name} ({states.get(name, 'not woken')})" for name in not_running)
        typer.echo(f"error: not running after the wait: {listed}", err=True)
    return not not_running


def _state_of(endpoint: object) -> str:
    return str(endpoint.get("status", "unknown")) if isinstance(endpoint, dict) else "unknown"


def _poll_until_settled(client: ServerClient, names: list[str]) -> dict[str, str]:
    """Each endpoint's state once all are running or in error, or when the wait runs out."""
    deadline = time.monotonic() + WAIT_ALL_SECONDS
    while True:
        endpoints = _read_endpoints(client)
        states = {name: _state_of(endpoints.get(name)) for name in names}
        if all(state in SETTLED_STATES for state in states.values()) or time.monotonic() >= deadline:
            return states
        time.sleep(POLL_INTERVAL_SECONDS)


@app.command()
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest first.")] = 20,
    model: Annotated[
        str | None, typer.Option("--model", help="Only this endpoint.", show_default=False)
    ] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only this operation, e.g. wake.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show the audit log of management operations, newest first."""
    params = {"limit": str(limit)}
    if model:
        params["model_type"] = model
    if operation:
        params["operation"] = operation
    with _client(ctx, server, key) as client:
        entries: list[Any] = require(client.get(f"{API}/audit", params=params), "entries", list)
    if as_json:
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    elif not entries:
        typer.echo("no audit entries")
    else:
        from crazy_gary._cli_render import audit_table, output_console

        output_console().print(audit_table(entries))


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
) -> None:
    """Check the settings against Hugging Face, Redis and the store, one line each; exit 1 on any ✗."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(exc.message, exit_code=2)
    from crazy_gary.doctor import render, report, run_diagnosis  # HF's client: not loaded by `status`

    checks = run_diagnosis(settings)
    if as_json:
        typer.echo(json.dumps(report(checks), indent=2, ensure_ascii=False))
    else:
        for check in checks:
            typer.echo(render(check))
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def main() -> None:
    """Run the ``crazy-gary`` command line (the console script)."""
    app(prog_name="crazy-gary")


if __name__ == "__main__":
    main()
