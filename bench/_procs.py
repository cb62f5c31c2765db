"""Child processes of a benchmark run, free ports, readiness polls and /proc memory figures.

Every child is started by `Processes` and ended by it, by its own id, when the run ends for whatever
reason (normal end, error, Ctrl-C, SIGTERM); on Linux a child also gets SIGTERM if this process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench._http import BenchError, try_status

__all__ = ["Processes", "free_port", "memory_kib", "refused_port", "tail", "wait_until_ok"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


class Processes:
    """Owns the children of a run: `spawn` long-lived servers, `run` a bounded command."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []
        self._preexec = _die_with_parent()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a server in a session of its own (Ctrl-C reaches only us), output to `log`."""
        with log.open("ab") as output:
            child = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec,
            )
        self._children.append(child)
        return child

    def run(self, argv: Sequence[str], timeout: float) -> str:
        """Run a command to its end (killed after `timeout` seconds); its standard output."""
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        self._children.append(child)
        try:
            output, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(child)
            raise BenchError(f"{Path(argv[0]).name} did not finish within {timeout:g} s") from None
        finally:
            self.stop(child)
        return output.decode("utf-8", "replace")

    def stop(self, child: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; forget the child."""
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                child.wait()
        if child in self._children:
            self._children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self._children[:]):
            self.stop(child)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def refused_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port without listening: connections to it are refused at once, and no
    other program can take the port while the socket stays open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


def tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, indented, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join("      " + line for line in text.rstrip().splitlines()[-lines:]) or "  (empty log)"


def wait_until_ok(
    child: subprocess.Popen[bytes],
    host: str,
    port: int,
    path: str,
    timeout: float,
    log: Path,
    started: float | None = None,
    interval: float = 0.005,
) -> float:
    """Poll `GET path` until it answers 200; the seconds since `started` (a `time.perf_counter()`
    reading, by default now). Fails when the child dies or at the timeout."""
    started = time.perf_counter() if started is None else started
    deadline = time.perf_counter() + timeout
    while True:
        if child.poll() is not None:
            raise BenchError(
                f"{path}: the process exited with code {child.returncode}; its log:\n{tail(log)}"
            )
        if try_status(host, port, path, timeout=2.0) == 200:
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise BenchError(f"{path} did not answer 200 within {timeout:g} s; the log:\n{tail(log)}")
        time.sleep(interval)


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak resident) and VmRSS of a process, in KiB, from /proc/<pid>/status."""
    figures: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise BenchError(f"cannot read /proc/{pid}/status: {exc.strerror}") from None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            figures[name] = int(value.split()[0])
    return figures
