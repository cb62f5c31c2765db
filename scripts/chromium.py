"""Before `make test`: the Chromium the browser tests drive, installed where this machine allows it.

Present: nothing to do. Missing, as root with apt-get: `apt-get update`, then `apt-get install -y
chromium` (what CI does). Missing otherwise: one line saying what to install, and exit status 1 — at
once, rather than after minutes of tests ending in setup errors. Standard library only: it runs
before the project's environment exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # the browser tests drive Debian's Chromium, never a download
INSTALL = [["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]


class Step(Enum):
    """What to do about the browser."""

    NOTHING = "nothing"
    INSTALL = "install"
    ASK = "ask"


def decide(*, present: bool, root: bool, apt_get: bool) -> Step:
    """Nothing when Chromium is there; install it as root with apt-get; else ask the user to."""
    if present:
        return Step.NOTHING
    return Step.INSTALL if root and apt_get else Step.ASK


def advice(chromium: Path) -> str:
    """The one line a user without the browser reads."""
    return (
        f"make test: the browser tests need Chromium at {chromium}; install it"
        " (Debian/Ubuntu: sudo apt-get install -y chromium) and run make test again"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help=argparse.SUPPRESS)
    chromium: Path = parser.parse_args(argv).chromium
    step = decide(
        present=os.access(chromium, os.X_OK),
        root=os.geteuid() == 0,
        apt_get=shutil.which("apt-get") is not None,
    )
    if step is Step.INSTALL:
        print(f"make test: installing Chromium ({chromium} is missing)", file=sys.stderr)
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in INSTALL:
            if subprocess.run(command, env=environment, check=False).returncode != 0:
                break
        step = Step.NOTHING if os.access(chromium, os.X_OK) else Step.ASK
    if step is Step.ASK:
        print(advice(chromium), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
