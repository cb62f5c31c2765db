"""scripts/chromium.py: what `make test` does about the browser before anything else."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chromium.py"


@pytest.fixture
def chromium() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chromium_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Machine:
    """A machine as the script sees it: who runs it, whether apt-get is there, what it ran."""

    def __init__(
        self, chromium: ModuleType, monkeypatch: pytest.MonkeyPatch, *, root: bool, apt: bool
    ) -> None:
        self.ran: list[list[str]] = []
        self.installs = True
        monkeypatch.setattr(chromium.os, "geteuid", lambda: 0 if root else 1000)
        monkeypatch.setattr(chromium.shutil, "which", lambda name: f"/usr/bin/{name}" if apt else None)
        monkeypatch.setattr(chromium.subprocess, "run", self.run)
        self.browser: Path | None = None

    def run(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.ran.append(command)
        if command[:2] == ["apt-get", "install"] and self.installs and self.browser is not None:
            self.browser.write_text("#!/bin/sh\n")
            self.browser.chmod(0o755)
        return subprocess.CompletedProcess(command, 0 if self.installs else 100)


def test_decide(chromium: ModuleType) -> None:
    """Nothing to do with the browser there; install only as root with apt-get; otherwise ask."""
    decide, step = chromium.decide, chromium.Step
    assert decide(present=True, root=False, apt_get=False) is step.NOTHING
    assert decide(present=False, root=True, apt_get=True) is step.INSTALL
    assert decide(present=False, root=True, apt_get=False) is step.ASK
    assert decide(present=False, root=False, apt_get=True) is step.ASK


def test_no_chromium_not_root_stops_with_one_line(
    chromium: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Chromium and without root: exit status 1, one line naming what to install, nothing run."""
    machine = Machine(chromium, monkeypatch, root=False, apt=True)
    assert chromium.main(["--chromium", str(tmp_path / "chromium")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "apt-get install -y chromium" in lines[0]
    assert machine.ran == []


def test_no_chromium_as_root_installs_it_as_ci_does(
    chromium: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As root with apt-get: `apt-get update`, then `apt-get install -y chromium`, and on it goes."""
    machine = Machine(chromium, monkeypatch, root=True, apt=True)
    machine.browser = tmp_path / "chromium"
    assert chromium.main(["--chromium", str(machine.browser)]) == 0
    assert machine.ran == [["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]


def test_a_failed_install_stops_with_the_line(
    chromium: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """apt-get failing (no network, say): no install after a failed update, exit 1 with the line."""
    machine = Machine(chromium, monkeypatch, root=True, apt=True)
    machine.installs = False
    assert chromium.main(["--chromium", str(tmp_path / "chromium")]) == 1
    assert machine.ran == [["apt-get", "update"]]
    assert "install it" in capsys.readouterr().err


def test_chromium_present_runs_nothing(tmp_path: Path) -> None:
    """With the browser there the script says nothing and succeeds (the real script, as make runs it)."""
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--chromium", str(browser)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
