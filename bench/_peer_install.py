"""The peer gateways' installs, outside the project's dependencies: LiteLLM's proxy from PyPI in a
virtualenv of its own, Portkey's AI gateway from npm in a folder of its own, both under
`.bench/peers/` (git-ignored). Installed on demand at a pinned version, reused when present.

A finished install leaves a marker file naming what it installed; a folder without a matching marker
(an older version, an install cut short) is removed and installed anew.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._http import BenchError

__all__ = [
    "LITELLM_SPEC",
    "LITELLM_VERSION",
    "PEERS_DIR",
    "PORTKEY_PACKAGE",
    "PORTKEY_VERSION",
    "ensure_litellm",
    "ensure_portkey",
    "portkey_package_json",
]

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / ".bench" / "peers"
# 1.108.7: the newest 1.x whose `proxy` extra resolves from PyPI here (1.108.14, 1.109.x and 1.110.x
# pin litellm-proxy-extras or litellm-proxy versions that the registry does not serve).
LITELLM_VERSION = "1.108.7"
LITELLM_SPEC = f"litellm[proxy]=={LITELLM_VERSION}"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
PORTKEY_VERSION = "1.15.2"
MARKER = ".bench-installed"
INSTALL_TIMEOUT = 900.0


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _installed(folder: Path, what: str) -> bool:
    marker = folder / MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() == what
    except OSError:
        return False


def _run(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run one install command to its end; a failure is a BenchError with the end of its output."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: not done within {INSTALL_TIMEOUT:g} s") from None
    except FileNotFoundError as exc:
        raise BenchError(f"{what}: {exc.filename} not found") from None
    if done.returncode != 0:
        output = done.stdout.decode("utf-8", "replace").strip().splitlines()
        raise BenchError(f"{what} failed (exit {done.returncode}): " + " / ".join(output[-3:]))


def _fresh(folder: Path) -> None:
    """An empty `folder` under .bench/peers/ (a partial or older install there is removed)."""
    if PEERS_DIR not in folder.parents:
        raise BenchError(f"refusing to clear {folder}: not under {PEERS_DIR}")
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)


def _uv() -> str | None:
    bundled = ROOT / ".tools" / "bin" / "uv"
    return str(bundled) if bundled.exists() else shutil.which("uv")


def ensure_litellm(folder: Path = PEERS_DIR / "litellm") -> Path:
    """LiteLLM's proxy at LITELLM_SPEC in its own virtualenv; the path of its `litellm` command."""
    command = folder / "bin" / "litellm"
    if _installed(folder, LITELLM_SPEC) and command.exists():
        return command
    _progress(f"installing {LITELLM_SPEC} into {folder} (first run only; a minute or more) …")
    _fresh(folder)
    python = folder / "bin" / "python"
    uv = _uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    if uv is not None:
        _run([uv, "venv", "--quiet", "--python", "python3", str(folder)], "uv venv", env)
        install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    else:
        _run([sys.executable, "-m", "venv", str(folder)], "python -m venv", env)
        install = [str(python), "-m", "pip", "install", "--quiet", "--compile"]
    _run([*install, LITELLM_SPEC], f"installing {LITELLM_SPEC}", env)
    if not command.exists():
        raise BenchError(f"{LITELLM_SPEC} installed no {command}")
    (folder / MARKER).write_text(LITELLM_SPEC + "\n", encoding="utf-8")
    return command


def portkey_package_json(version: str = PORTKEY_VERSION) -> str:
    """The package.json of the Portkey folder: the gateway alone, at an exact version."""
    manifest = {
        "name": "crazy-gary-bench-portkey",
        "private": True,
        "description": "Portkey's AI gateway for crazy-gary's benchmark (python -m bench)",
        "dependencies": {PORTKEY_PACKAGE: version},
    }
    return json.dumps(manifest, indent=2) + "\n"


def ensure_portkey(folder: Path = PEERS_DIR / "portkey") -> tuple[str, Path]:
    """Portkey's gateway at PORTKEY_VERSION under `folder`; (the node command, its start script)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BenchError(
            "node and npm are needed for Portkey's gateway (Debian: apt-get install -y nodejs npm)"
        )
    script = folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    spec = f"{PORTKEY_PACKAGE}@{PORTKEY_VERSION}"
    if _installed(folder, spec) and script.exists():
        return node, script
    _progress(f"installing {spec} into {folder} (first run only) …")
    _fresh(folder)
    folder.mkdir()
    (folder / "package.json").write_text(portkey_package_json(), encoding="utf-8")
    argv = [npm, "install", "--prefix", str(folder), "--omit=dev", "--no-audit", "--no-fund"]
    _run([*argv, "--loglevel=error"], f"npm install {spec}")
    if not script.exists():
        raise BenchError(f"npm install {spec} left no {script}")
    (folder / MARKER).write_text(spec + "\n", encoding="utf-8")
    return node, script
