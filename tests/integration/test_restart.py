"""Restart safety with real processes: times, auto-sleep schedule, audit log, unfinished operations."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

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


def audit(server: Process, query: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api(
        server, "GET", f"/api/endpoints/audit?{query}", key=VIEWER_KEY
    ).json()["entries"]
    return entries


def test_restart_keeps_times_and_auto_sleep_schedule(simulator: Process, tmp_path: Path) -> None:
    """After a restart the times are the same and auto-sleep fires when it would have without it."""
    data = str(tmp_path)
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
        # when the server began the sleep, by its own clock (whole seconds): not when this test saw it
        slept = status_of(second, "20b")["sleep_time"]
        assert due <= slept <= due + 2  # type: ignore[operator]
        assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] == 1
        log = audit(second, "model_type=20b")
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


def test_unfinished_sleep_is_finished_after_a_crash(simulator: Process, tmp_path: Path) -> None:
    """A sleep accepted but not done when the process died is carried out by the next start; the
    accepted sleep stays in the audit log with `success` null, and the resumed one has its outcome."""
    data = str(tmp_path)
    first = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        assert api(first, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=30_000)
        held = threading.Thread(target=hold, args=(first,), daemon=True)
        held.start()
        wait_until(lambda: status_of(first, "20b")["in_flight"] == 1)
        answer = api(first, "POST", "/api/endpoints/sleep/20b")
        assert answer.json()["status"] == "stopping"  # waiting for the request in flight to end
        # reading the log writes what is queued: the sleep's entry, and the endpoint's memory with it
        accepted = audit(first, "operation=sleep")
        assert [(e["actor"], e["success"]) for e in accepted] == [("ops", None)]
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()
    finally:
        first.stop()
    assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] == 0
    sim_set(simulator, "endpoints/gpt-oss-20b", latency_ms=0)
    second = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        wait_until(lambda: status_of(second, "20b")["status"] == "sleeping", timeout=20)
        wait_until(lambda: audit(second, "operation=sleep")[0]["success"] is not None)
        log = audit(second, "operation=sleep")
        assert [(e["actor"], e["success"]) for e in log] == [
            ("ops (resumed after restart)", True),
            ("ops", None),
        ]
        assert log[1]["id"] == accepted[0]["id"]
    finally:
        second.stop()


def test_audit_log_survives_restart(simulator: Process, tmp_path: Path) -> None:
    """Entries written by one run are read by the next."""
    data = str(tmp_path)
    first = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        assert api(first, "POST", "/api/endpoints/wake/120b?wait=true", key=OPERATOR_KEY).status_code == 200
        api(first, "POST", "/api/endpoints/wake/120b", key=VIEWER_KEY)
    finally:
        first.stop()
    second = start_server(simulator, CRAZY_GARY_DATA_DIR=data)
    try:
        log = audit(second, "model_type=120b")
        refused = [e for e in log if e["operation"] == "wake" and e["success"] is False]
        assert refused[0]["actor"].startswith("viewer:")  # a key without a name: role and short hash
        assert ("wake", "ops", True) in [(e["operation"], e["actor"], e["success"]) for e in log]
    finally:
        second.stop()
