"""The commands that talk to a running server: status, watch, wake, sleep, audit and usage.

Each finds the server with ``--server`` (env ``CRAZY_GARY_URL``) and sends ``--key`` (env
``CRAZY_GARY_KEY``) as a bearer token, given before the command or after it. They load no server
stack: only Typer here, httpx2 once a client is made, and Rich once there is a table to print.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import typer

from crazy_gary.cli.client import DEFAULT_SERVER, ServerClient, fail, require

__all__ = ["audit", "connect", "sleep", "status", "usage", "wake", "watch"]

API = "/api/endpoints"
SETTLED_STATES = frozenset({"running", "error"})
WAIT_ALL_SECONDS = 600.0
POLL_INTERVAL_SECONDS = 1.0
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_MOMENT = re.compile(r"(?P<amount>[0-9]+)(?P<unit>[smhd])?")


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


def connect(
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
    """The options before the command: kept for the command that follows."""
    ctx.obj = _Connection(server=server, key=key)


def _client(ctx: typer.Context, server: str | None, key: str | None) -> ServerClient:
    """A client for the server named after the command, else before it, else by the environment."""
    given: _Connection = ctx.obj if isinstance(ctx.obj, _Connection) else _Connection(DEFAULT_SERVER, None)
    return ServerClient(server or given.server, key or given.key)


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
        from crazy_gary.cli.render import output_console, status_table  # Rich: only to print a table

        output_console().print(status_table(endpoints, now=time.time()))


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
    from crazy_gary.cli.render import output_console, screen
    from crazy_gary.cli.watch import watch_events

    console = output_console()
    # Ctrl-C is how a watch ends, not a failure
    with _client(ctx, server, key) as client, screen(console) as show, contextlib.suppress(KeyboardInterrupt):
        # piped, a table is printed only when something changed; on a terminal it is redrawn every
        # `interval` too, so the countdown runs
        watch_events(client, show, tick=interval if console.is_terminal else None, count=count)


def _read_endpoints(client: ServerClient) -> dict[str, Any]:
    endpoints: dict[str, Any] = require(client.get(f"{API}/status"), "endpoints", dict)
    return endpoints


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
        from crazy_gary.cli.render import audit_table, output_console

        output_console().print(audit_table(entries))


_MOMENT_HELP = "Unix seconds, or a time ago: a number with s, m, h or d, such as 90m, 24h or 7d."


def usage(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help=f"Start of the period [default: 24 h before --until]. {_MOMENT_HELP}",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help=f"End of the period [default: now]. {_MOMENT_HELP}", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's answer as JSON.")] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show the tokens and cost of each key per endpoint, the idle cost, and the quotas."""
    with _client(ctx, server, key) as client:
        body = client.get("/api/usage", params=_period(since, until, now=int(time.time())))
    rows: list[Any] = require(body, "rows", list)
    if as_json:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    from crazy_gary.cli.render import output_console, quota_table, usage_table

    console = output_console()
    if rows:
        console.print(usage_table(rows, since=body.get("since"), until=body.get("until")))
    else:
        typer.echo("no usage in this period")
    quotas = body.get("quotas")
    if isinstance(quotas, dict) and quotas:
        console.print()
        console.print(quota_table(quotas))


def _period(since: str | None, until: str | None, now: int) -> dict[str, str]:
    """The query of `usage`: the bounds given, as Unix seconds (the server defaults the others)."""
    params = {
        name: str(_moment(name, value, now))
        for name, value in (("since", since), ("until", until))
        if value is not None
    }
    if "since" in params and "until" in params and int(params["since"]) >= int(params["until"]):
        fail("--since must be before --until", exit_code=2)
    return params


def _moment(option: str, value: str, now: int) -> int:
    """`value` of --since or --until as Unix seconds: as given, or that long before `now` with a unit."""
    match = _MOMENT.fullmatch(value.strip().lower())
    if match is None:
        fail(f"--{option} takes Unix seconds or a time ago such as 24h or 7d, not {value!r}", exit_code=2)
    amount, unit = int(match["amount"]), match["unit"]
    return amount if unit is None else now - amount * _UNIT_SECONDS[unit]
