"""The ``crazy-gary`` command: start the server or the simulator, and manage a running server.

Commands that talk to a server find it with ``--server`` (env ``CRAZY_GARY_URL``) and send
``--key`` (env ``CRAZY_GARY_KEY``) as a bearer token. Each may be given before the command
(``crazy-gary --server URL status``) or after it (``crazy-gary status --server URL``).
Every failure is one ``error: …`` line on stderr and a non-zero exit: 1 when the server or the
network failed us, 2 for a bad command line or configuration.

The commands live in :mod:`~crazy_gary.cli.server` (serve, simulate), :mod:`~crazy_gary.cli.endpoints`
(status, watch, wake, sleep, audit, usage), :mod:`~crazy_gary.cli.doctor` and
:mod:`~crazy_gary.cli.replay`; loading them loads Typer and
nothing of the server, so that ``crazy-gary status`` starts in a fraction of a second.
"""

from __future__ import annotations

import typer

from crazy_gary.cli import doctor, endpoints, replay, server

__all__ = ["app", "main"]

COMMANDS = (
    server.serve,
    server.simulate,
    endpoints.status,
    endpoints.watch,
    endpoints.wake,
    endpoints.sleep,
    endpoints.audit,
    endpoints.usage,
    doctor.doctor,
    replay.replay,
)  # in the order `--help` lists them


def _build_app() -> typer.Typer:
    built = typer.Typer(
        help="Keeps large language models on Hugging Face Inference Endpoints cheap and always answering.",
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    built.callback()(endpoints.connect)
    for command in COMMANDS:
        built.command()(command)
    return built


app = _build_app()


def main() -> None:
    """Run the ``crazy-gary`` command line (the console script)."""
    app(prog_name="crazy-gary")
