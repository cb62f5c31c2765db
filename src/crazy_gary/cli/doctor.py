"""`crazy-gary doctor`: the checks of :mod:`crazy_gary.doctor`, one line each or as one JSON object."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from crazy_gary.cli.client import fail
from crazy_gary.errors import ConfigError

__all__ = ["doctor"]


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
) -> None:
    """Check the settings against Hugging Face, Redis and the store, one line each; exit 1 on any ✗."""
    from crazy_gary.config import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(exc.message, exit_code=2)
    from crazy_gary.doctor import render, report, run_diagnosis  # HF's client, the simulator: once needed

    checks = run_diagnosis(settings)
    if as_json:
        typer.echo(json.dumps(report(checks), indent=2, ensure_ascii=False))
    else:
        for check in checks:
            typer.echo(render(check))
    if not all(check.ok for check in checks):
        raise typer.Exit(1)
