"""Restart safety with real processes: times, auto-sleep schedule, audit log, unfinished operations."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time

import httpx2

from .conftest import (
    OPERATOR_KEY,
    USER_KEY,
    VIEWER_KEY,
    Process,
    api,
    sim_calls,
    sim_set,
    start_server,
    status_of,
    wait_until,
)


def chat(server: Process, model: str = "20b", timeout: float = 30) -> httpx2.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return httpx2.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {USER_KEY}"},
        timeout=timeout,
    )


def test_restart_keeps_times_and_auto_sleep_schedule(simulator: Process) -> None:
    """After a restart the times are the same and auto-sleep fires when it would have without it."""
    data = tempfile.mkdtemp(prefix="crazy-gary-restart-")
    first = start_server(simulator, ENDPOINT_AUTO_SLEEP="8", CRAZY_GARY_DATA_DIR=data)
    try:
        assert api(first, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        assert chat(first).status_code == 200
        before = status_of(first, "20b")
        assert before["last_activity"] is not None
    finally:
        first.stop()
    second = start_server(simulator, ENDPOINT_AUTO_SLEEP="8", CRAZY_GARY_DATA_DIR=data)
    try:
        after = status_of(second, "20b")
        assert after["status"] == "running"
        assert (after["wake_time"], after["last_activity"]) == (before["wake_time"], before["last_activity"])
        due = float(before["last_activity"]) + 8  # type: ignore[arg-type]
        assert after["auto_sleep_in"] <= due - time.time() + 1  # type: ignore[operator]
        wait_until(lambda: status_of(second, "20b")["status"] == "sleeping", timeout=20)
        assert abs(time.time() - due) < 3
        assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] == 1
        log = api(second, "GET", "/api/endpoints/audit?model_type=20b", key=VIEWER_KEY).json()["entries"]
        operations = [
            (e["operation"], e["actor"], e["success"]) for e in log if e["operation"] in ("wake", "sleep")
        ]
        assert operations == [("sleep", "auto-sleep", True), ("wake", "ops", True)]
    finally:
        second.stop()


def hold(server: Process) -> None:
    """A request that stays in flight until its server dies."""
    with contextlib.suppress(httpx2.HTTPError):
        chat(server, timeout=40)


def test_unfinished_sleep_is_finished_after_a_crash(simulator: Process) -> None:
    """A sleep accepted but not done when the process died is carried out by the next start."""
    data = tempfile.mkdtemp(prefix="crazy-gary-crash-")
    first = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        assert api(first, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=30_000)
        held = threading.Thread(target=hold, args=(first,), daemon=True)
        held.start()
        wait_until(lambda: status_of(first, "20b")["in_flight"] == 1)
        answer = api(first, "POST", "/api/endpoints/sleep/20b")
        assert answer.json()["status"] == "stopping"  # waiting for the request in flight to end
        time.sleep(1.5)  # the recorder writes an operation at once; give it the moment it needs
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()
    finally:
        first.stop()
    assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] == 0
    sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=0)
    second = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        wait_until(lambda: status_of(second, "20b")["status"] == "sleeping", timeout=20)
        log = api(second, "GET", "/api/endpoints/audit?operation=sleep", key=VIEWER_KEY).json()["entries"]
        assert log[0]["actor"] == "ops (resumed after restart)"
        assert log[0]["success"] is True
    finally:
        second.stop()


def test_audit_log_survives_restart(simulator: Process) -> None:
    """Entries written by one run are read by the next."""
    data = tempfile.mkdtemp(prefix="crazy-gary-audit-")
    first = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        assert api(first, "POST", "/api/endpoints/wake/120b?wait=true", key=OPERATOR_KEY).status_code == 200
        api(first, "POST", "/api/endpoints/wake/120b", key=VIEWER_KEY)
    finally:
        first.stop()
    second = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        log = api(second, "GET", "/api/endpoints/audit?model_type=120b", key=VIEWER_KEY).json()["entries"]
        refused = [e for e in log if e["operation"] == "wake" and not e["success"]]
        assert refused[0]["actor"].startswith("viewer:")  # a key without a name: role and short hash
        assert ("wake", "ops", True) in [(e["operation"], e["actor"], e["success"]) for e in log]
    finally:
        second.stop()
