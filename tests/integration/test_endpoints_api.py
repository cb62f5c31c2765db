"""The endpoints API of `serve --no-simulate` against a separate `simulate` process, as the issue demands."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .conftest import (
    VIEWER_KEY,
    Process,
    api,
    sim_calls,
    sim_set,
    start_server,
    status_of,
    wait_until,
)


def test_status_shows_both_endpoints(server: Process) -> None:
    """Status lists 120b and 20b sleeping, with the configured addresses."""
    body = api(server, "GET", "/api/endpoints/status", key=VIEWER_KEY).json()
    assert body["success"] is True
    assert body["endpoints"]["120b"]["status"] == "sleeping"
    assert body["endpoints"]["120b"]["url"] == "demo/gpt-oss-120b"
    assert body["endpoints"]["20b"]["model"] == "openai/gpt-oss-20b"


def test_twenty_simultaneous_wakes_cause_one_cold_start(server: Process, simulator: Process) -> None:
    """Twenty concurrent wake requests start the endpoint once upstream."""
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: api(server, "POST", "/api/endpoints/wake/120b"), range(20)))
    assert {answer.status_code for answer in answers} <= {200, 202}
    assert sum(answer.status_code == 202 for answer in answers) == 1
    assert all(answer.json()["status"] == "starting" for answer in answers)
    wait_until(lambda: status_of(server, "120b")["status"] == "running")
    calls = sim_calls(simulator)["gpt-oss-120b"]
    assert calls["starts"] == 1
    assert calls["resume"] + calls["inference"] <= 1


def test_wake_wait_true_answers_when_running(server: Process) -> None:
    """?wait=true answers 200 once the endpoint runs."""
    response = api(server, "POST", "/api/endpoints/wake/20b?wait=true")
    assert response.status_code == 200
    assert response.json() == {"success": True, "status": "running", "model_type": "20b"}
    sleep = api(server, "POST", "/api/endpoints/sleep/20b?wait=true")
    assert sleep.status_code == 200, sleep.text
    assert sleep.json()["status"] == "sleeping"


def test_an_operation_is_audited_from_its_answer_on(server: Process) -> None:
    """A wake is in the audit log right after its 202 with `success` null, and the same entry has its
    outcome once the endpoint runs; a sleep of a sleeping endpoint (200, nothing changed) is audited."""
    assert api(server, "POST", "/api/endpoints/wake/20b").status_code == 202
    (accepted,) = audit(server, "operation=wake&model_type=20b")
    assert (accepted["actor"], accepted["success"]) == ("ops", None)
    wait_until(lambda: audit(server, "operation=wake&model_type=20b")[0]["success"] is not None)
    (ended,) = audit(server, "operation=wake&model_type=20b")
    assert (ended["id"], ended["success"], ended["error"]) == (accepted["id"], True, None)
    assert ended["details"]["sent"]
    assert api(server, "POST", "/api/endpoints/sleep/120b").status_code == 200
    (unchanged,) = audit(server, "operation=sleep&model_type=120b")
    assert (unchanged["actor"], unchanged["success"]) == ("ops", True)
    assert (unchanged["details"]["changed"], unchanged["details"]["status"]) == (False, "sleeping")


def audit(server: Process, query: str) -> list[dict[str, Any]]:
    body = api(server, "GET", f"/api/endpoints/audit?{query}", key=VIEWER_KEY).json()
    entries: list[dict[str, Any]] = body["entries"]
    return entries


def test_woken_unused_endpoint_sleeps_by_itself_while_status_is_read(simulator: Process) -> None:
    """Auto-sleep fires ENDPOINT_AUTO_SLEEP after the wake even while status is read every 300 ms."""
    server = start_server(simulator, ENDPOINT_AUTO_SLEEP="3")
    try:
        assert api(server, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        seen: list[str] = []

        def asleep() -> bool:
            seen.append(str(status_of(server, "20b")["status"]))
            return seen[-1] == "sleeping"

        wait_until(asleep, timeout=20, interval=0.3)  # the reads every 300 ms are what is tested
        assert seen[0] == "running"
        assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] == 1
        after = status_of(server, "20b")
        # the server's own times (whole seconds): not before ENDPOINT_AUTO_SLEEP after it ran, which
        # was after the wake began
        assert after["sleep_time"] - after["wake_time"] >= 3  # type: ignore[operator]
    finally:
        server.stop()


def test_failed_endpoint_shows_error(server: Process, simulator: Process) -> None:
    """An endpoint HF reports as failed shows `error`, with HF's message as the reason."""
    sim_set(simulator, "endpoints/gpt-oss-20b", state="failed")
    wait_until(lambda: status_of(server, "20b")["status"] == "error")
    assert (
        status_of(server, "20b")["error"]
        == "Hugging Face reports the endpoint failed: Endpoint failed to deploy."
    )


def test_stopped_management_api_shows_unknown_and_server_stays_healthy(
    server: Process, simulator: Process
) -> None:
    """With the management API failing, states turn `unknown`, /healthz still answers, and it recovers."""
    sim_set(simulator, "management", error_rate=1.0, error_status=503)
    wait_until(lambda: status_of(server, "120b")["status"] == "unknown", timeout=20)
    assert api(server, "GET", "/healthz").status_code == 200
    assert "management API" in str(status_of(server, "120b")["error"])
    sim_set(simulator, "management", error_rate=0.0)
    wait_until(lambda: status_of(server, "120b")["status"] == "sleeping", timeout=20)


def test_half_failing_management_api_does_not_stop_a_wake(server: Process, simulator: Process) -> None:
    """With half the management calls failing, a wake still brings the endpoint up."""
    sim_set(simulator, "endpoints/gpt-oss-20b", state="paused")
    wait_until(lambda: status_of(server, "20b")["hf_state"] == "paused")
    sim_set(simulator, "management", error_rate=0.5, error_status=503)
    assert api(server, "POST", "/api/endpoints/wake/20b").status_code == 202
    wait_until(lambda: status_of(server, "20b")["status"] == "running", timeout=30)


def test_refused_token_is_clear_and_not_fatal(simulator: Process) -> None:
    """A token the management API refuses shows as `unknown` with an error naming HUGGINGFACE_API_KEY."""
    server = start_server(simulator, HUGGINGFACE_API_KEY="hf_not_the_token")
    try:
        body = status_of(server, "120b")
        assert body["status"] == "unknown"
        assert "HUGGINGFACE_API_KEY" in str(body["error"])
        assert "hf_not_the_token" not in api(server, "GET", "/api/endpoints/status", key=VIEWER_KEY).text
        assert api(server, "GET", "/healthz").status_code == 200
    finally:
        server.stop()
