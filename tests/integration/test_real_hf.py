"""`serve` against `simulate` playing Hugging Face as it really behaves: models that load after
`running`, endpoints only inference wakes, HF's own idle timer and replica counts, malformed answers,
namespaces without access."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from .conftest import (
    USER_KEY,
    Process,
    api,
    sim_calls,
    sim_set,
    start_server,
    start_simulator,
    status_of,
    wait_until,
)

MESSAGES = [{"role": "user", "content": "Are you awake?"}]


@pytest.fixture
def simulator() -> Iterator[Process]:
    process = start_simulator(cold_start=1.0)
    yield process
    process.stop()


def hf_endpoint(simulator: Process, name: str) -> dict[str, Any]:
    """The endpoint object as Hugging Face's management API sends it."""
    headers = {"Authorization": "Bearer hf_simulator"}
    answer: dict[str, Any] = httpx2.get(f"{simulator.url}/v2/endpoint/demo/{name}", headers=headers).json()
    return answer


def audit(server: Process, **query: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api(server, "GET", "/api/endpoints/audit", params=query).json()["entries"]
    return entries


def test_a_model_loading_after_running_gets_no_request_and_trips_no_breaker(simulator: Process) -> None:
    """An endpoint whose routes answer 503 for 6 s after HF reports it running is `starting` all that
    time; the request held for it goes out once its health route answers, and succeeds."""
    sim_set(simulator, "endpoints/gpt-oss-120b", ready_delay=6)
    server = start_server(simulator, CRAZY_GARY_FALLBACK_WAIT="60", CRAZY_GARY_BREAKER_FAILURES="1")
    try:
        chat = openai.OpenAI(api_key=USER_KEY, base_url=f"{server.url}/v1", max_retries=0, timeout=60)
        began = time.monotonic()
        raw = chat.chat.completions.with_raw_response.create(model="120b", messages=MESSAGES)  # type: ignore[arg-type]
        waited = time.monotonic() - began
        assert raw.headers["x-crazy-gary-served-by"] == "120b"
        assert "x-crazy-gary-fallback-reason" not in raw.headers
        assert waited >= 6  # the load, on top of the cold start
        calls = sim_calls(simulator)["gpt-oss-120b"]
        assert calls["inference"] == 1  # nothing was sent while the model loaded
        assert calls["health"] >= 2  # asked until it answered
        view = status_of(server, "120b")
        assert view["status"] == "running" and view["circuit"] == "closed"
    finally:
        server.stop()


def test_an_endpoint_that_only_inference_wakes_is_woken(simulator: Process) -> None:
    """Where a GET of the health route does not start a scaled-to-zero endpoint, the wake sends one
    inference request a few seconds later; both are in the wake's audit details and the metrics."""
    sim_set(simulator, "endpoints/gpt-oss-20b", start_on="inference")
    server = start_server(simulator)
    try:
        woken = api(server, "POST", "/api/endpoints/wake/20b", params={"wait": "true"})
        assert woken.status_code == 200, woken.text
        assert status_of(server, "20b")["status"] == "running"
        calls = sim_calls(simulator)["gpt-oss-20b"]
        assert calls["starts"] == 1 and calls["inference"] == 1
        wake = wait_until(
            lambda: next(
                (e for e in audit(server, operation="wake", model_type="20b") if e["success"] is not None),
                None,
            )
        )
        assert wake["success"] and wake["details"]["sent"] == ["health", "inference"]
        metrics = api(server, "GET", "/metrics").text
        assert 'crazy_gary_wake_requests_total{endpoint="20b",kind="inference"} 1.0' in metrics
    finally:
        server.stop()


def test_the_safety_net_sets_hfs_idle_timer_at_start_and_audits_it(simulator: Process) -> None:
    """At start HF's own idle timer of every endpoint is set to auto-sleep + 15 minutes, audited as
    `configure` by crazy-gary, and shown as `hf_scale_to_zero_timeout`."""
    server = start_server(simulator, ENDPOINT_AUTO_SLEEP="600")
    try:
        for key, name in (("120b", "gpt-oss-120b"), ("20b", "gpt-oss-20b")):
            wait_until(
                lambda name=name: (
                    hf_endpoint(simulator, name)["compute"]["scaling"]["scaleToZeroTimeout"] == 25
                )
            )
            wait_until(lambda key=key: status_of(server, key)["hf_scale_to_zero_timeout"] == 25)
        entries = wait_until(
            lambda: len(audit(server, operation="configure")) == 2 and audit(server, operation="configure")
        )
        assert {e["actor"] for e in entries} == {"crazy-gary"}
        assert all(e["details"]["scale_to_zero_timeout"][1] == 25 for e in entries)
    finally:
        server.stop()


def test_the_safety_net_off_leaves_hfs_setting_alone(simulator: Process) -> None:
    """With CRAZY_GARY_HF_SCALE_TO_ZERO=off the endpoints' idle timers stay as they were."""
    before = hf_endpoint(simulator, "gpt-oss-120b")["compute"]["scaling"]
    server = start_server(simulator, CRAZY_GARY_HF_SCALE_TO_ZERO="off")
    try:
        assert status_of(server, "120b")["hf_scale_to_zero_timeout"] == before["scaleToZeroTimeout"]
        assert hf_endpoint(simulator, "gpt-oss-120b")["compute"]["scaling"] == before
        assert audit(server, operation="configure") == []
        assert sim_calls(simulator)["gpt-oss-120b"]["update"] == 0
    finally:
        server.stop()


def test_replica_counts_are_back_after_pause_and_resume(simulator: Process) -> None:
    """A sleep by pause (counts 0) and a wake by resume (counts 1) leave the replica counts as before
    the pause, so HF's own idle timer still works."""
    sim_set(simulator, "endpoints/gpt-oss-20b", state="running")
    server = start_server(simulator, ENDPOINT_SLEEP_MODE="pause")
    try:
        wait_until(lambda: status_of(server, "20b")["status"] == "running")
        wait_until(lambda: sim_calls(simulator)["gpt-oss-20b"]["update"] >= 1)  # the safety net at start
        api(server, "POST", "/api/endpoints/sleep/20b")
        wait_until(lambda: hf_endpoint(simulator, "gpt-oss-20b")["status"]["state"] == "paused")
        assert hf_endpoint(simulator, "gpt-oss-20b")["compute"]["scaling"]["maxReplica"] == 0
        assert api(server, "POST", "/api/endpoints/wake/20b", params={"wait": "true"}).status_code == 200
        scaling = wait_until(
            lambda: (
                (s := hf_endpoint(simulator, "gpt-oss-20b")["compute"]["scaling"])["minReplica"] == 0 and s
            )
        )
        assert (scaling["minReplica"], scaling["maxReplica"], scaling["scaleToZeroTimeout"]) == (0, 1, 30)
        reasons = [e["details"].get("reason") for e in audit(server, operation="configure")]
        assert "replica counts after a resume" in reasons
    finally:
        server.stop()


def test_a_malformed_answer_gives_unknown_with_a_reason_and_the_states_follow_again(
    simulator: Process,
) -> None:
    """Answers whose endpoint objects lack `status` make the endpoints `unknown` with the reason;
    polling goes on, and the states follow HF as soon as it answers properly."""
    server = start_server(simulator)
    try:
        sim_set(simulator, "management", malformed_rate=1.0)
        broken = wait_until(lambda: (v := status_of(server, "120b"))["status"] == "unknown" and v)
        assert "nonsense" in broken["error"] and "status" in broken["error"]
        sim_set(simulator, "management", malformed_rate=0.0)
        wait_until(lambda: status_of(server, "120b")["status"] == "sleeping")
        assert status_of(server, "120b")["error"] is None
    finally:
        server.stop()


def test_a_foreign_namespace_names_itself_the_token_and_billing(simulator: Process) -> None:
    """An endpoint in a namespace the token may not use is `unknown`; its error names the namespace
    and says the token, the access or the billing may be the cause."""
    server = start_server(simulator, HF_BASE_URL_20B="someone-else/gpt-oss-20b")
    try:
        view = status_of(server, "20b")
        assert view["status"] == "unknown"
        assert "'someone-else'" in view["error"] and "HUGGINGFACE_API_KEY" in view["error"]
        assert "billing" in view["error"]
        assert status_of(server, "120b")["status"] == "sleeping"  # its own namespace is fine
    finally:
        server.stop()


def test_a_429_with_retry_after_is_not_asked_again_before_it(simulator: Process) -> None:
    """Once the management API answers 429 with `Retry-After: 6`, `serve` asks it nothing for 6 s."""
    server = start_server(simulator)
    try:
        sim_set(simulator, "management", error_rate=1.0, error_status=429, retry_after=6)
        before = sim_calls(simulator)["_list"]
        wait_until(lambda: sim_calls(simulator)["_list"] > before)  # the first 429
        refused_at, refused = time.monotonic(), sim_calls(simulator)["_list"]
        wait_until(lambda: sim_calls(simulator)["_list"] > refused, timeout=15)
        assert time.monotonic() - refused_at >= 5.5  # asked again only once the 6 s had passed
        sim_set(simulator, "management", error_rate=0.0)
        wait_until(
            lambda: (
                status_of(server, "120b")["status"] == "sleeping"
                and status_of(server, "120b")["error"] is None
            )
        )
    finally:
        server.stop()
