"""What each layer loads: the domain and the server-talking CLI commands load no server stack.

Each check runs in a fresh interpreter, since this test process has long loaded everything.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

SERVER_STACK = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "aiohttp", "huggingface_hub")
OURS_BEYOND_THE_CORE = ("crazy_gary.simulator", "crazy_gary.web", "crazy_gary.store", "crazy_gary.hf")

# Runs `crazy-gary ARGS…` for each argument list in argv[1] (JSON), then prints the loaded modules.
_RUN_COMMANDS = """
import contextlib, io, json, sys
from crazy_gary.cli import app
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            app(args, prog_name="crazy-gary")
        except SystemExit:
            pass
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_after(code: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def _from(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [name for name in modules if any(name == root or name.startswith(f"{root}.") for root in roots)]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_core_loads_no_web_framework_store_or_simulator() -> None:
    """`import crazy_gary.core.manager` and `core.routing` load no web stack, store, HF client or simulator."""
    code = "import json, sys, crazy_gary.core.manager, crazy_gary.core.routing; print(json.dumps(sorted(sys.modules)))"
    modules = _loaded_after(code)
    assert _from(modules, (*SERVER_STACK, *OURS_BEYOND_THE_CORE, "crazy_gary.config")) == []


@pytest.mark.parametrize("command", ["status", "watch", "wake", "sleep", "audit", "usage"])
def test_a_server_talking_command_loads_no_server_stack(command: str) -> None:
    """The CLI loaded, then `COMMAND --help` and `COMMAND` run against a closed port, load no server stack."""
    url = _closed_port_url()
    target = ["--all"] if command in ("wake", "sleep") else []
    runs = [[command, "--help"], [command, *target, "--server", url]]
    modules = _loaded_after(_RUN_COMMANDS, json.dumps(runs))
    assert "httpx2" in modules  # the second run did try to reach the server
    assert _from(modules, (*SERVER_STACK, *OURS_BEYOND_THE_CORE)) == []


def test_the_root_help_loads_no_settings_and_no_http_client() -> None:
    """`crazy-gary --help` loads neither the settings (pydantic-settings) nor httpx2 nor Rich."""
    modules = _loaded_after(_RUN_COMMANDS, json.dumps([["--help"]]))
    assert _from(modules, (*SERVER_STACK, "pydantic_settings", "httpx2", "rich", "crazy_gary.config")) == []
