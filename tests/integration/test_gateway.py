"""The OpenAI-compatible gateway, driven by the official `openai` client against `serve` and `simulate`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import openai
import pytest

from .conftest import (
    USER_KEY,
    VIEWER_KEY,
    Process,
    api,
    sim_calls,
    sim_set,
    start_server,
    start_simulator,
    status_of,
    wait_until,
)

MESSAGES = [{"role": "user", "content": "Why do large models sleep?"}]


@pytest.fixture
def gateway(simulator: Process) -> Iterator[Process]:
    process = start_server(
        simulator,
        CRAZY_GARY_FALLBACK_WAIT="1",
        CRAZY_GARY_BREAKER_COOLDOWN="3",
        CRAZY_GARY_RETRY_ATTEMPTS="3",
    )
    yield process
    process.stop()


def client(server: Process, key: str = USER_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0, timeout=60)


def status(server: Process, key: str) -> str:
    return str(status_of(server, key)["status"])


def set_running(simulator: Process, server: Process, *names: str) -> None:
    for name in names:
        sim_set(simulator, f"endpoints/gpt-oss-{name}", state="running")
    for name in names:
        wait_until(lambda name=name: status(server, name) == "running")


def ask(server: Process, model: str = "120b", **params: Any) -> Any:
    """One non-streamed chat; the raw response (headers) and its parsed completion."""
    raw = client(server).chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **params)
    return raw, raw.parse()


def stream_text(server: Process, model: str = "120b") -> tuple[str, str, Any]:
    """One streamed chat reassembled: (content, reasoning, raw response)."""
    content, reasoning = [], []
    with client(server).chat.completions.with_streaming_response.create(
        model=model, messages=MESSAGES, stream=True
    ) as response:
        for chunk in response.parse():
            for choice in chunk.choices:
                content.append(choice.delta.content or "")
                reasoning.append(getattr(choice.delta, "reasoning", None) or "")
        return "".join(content), "".join(reasoning), response


def test_running_primary_answers(gateway: Process, simulator: Process) -> None:
    """A running primary answers itself: served-by 120b, no fallback reason, reasoning and usage kept."""
    set_running(simulator, gateway, "120b")
    raw, completion = ask(gateway)
    assert raw.headers["x-crazy-gary-served-by"] == "120b"
    assert "x-crazy-gary-fallback-reason" not in raw.headers
    assert completion.choices[0].message.content
    assert completion.choices[0].message.reasoning  # type: ignore[attr-defined]
    assert completion.usage.total_tokens > 0
    assert sim_calls(simulator)["gpt-oss-120b"]["inference"] == 1


def test_sleeping_primary_falls_back_then_returns(gateway: Process, simulator: Process) -> None:
    """A sleeping primary is woken; 20b answers within FALLBACK_WAIT + 1 s; later requests go to 120b."""
    set_running(simulator, gateway, "20b")
    started = time.monotonic()
    raw, _ = ask(gateway)
    assert time.monotonic() - started <= 1 + 1
    assert raw.headers["x-crazy-gary-served-by"] == "20b"
    assert raw.headers["x-crazy-gary-fallback-reason"] == "primary_sleeping"
    wait_until(lambda: status(gateway, "120b") == "running")
    raw, _ = ask(gateway)
    assert raw.headers["x-crazy-gary-served-by"] == "120b"
    assert sim_calls(simulator)["gpt-oss-120b"]["starts"] == 1


def test_forty_requests_at_two_sleeping_endpoints(gateway: Process, simulator: Process) -> None:
    """Forty simultaneous requests at sleeping endpoints all succeed, one cold start each, few polls."""
    before = sim_calls(simulator)
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda index: ask(gateway, "120b" if index % 2 else "20b"), range(40)))
    assert all(completion.choices[0].message.content for _, completion in answers)
    after = sim_calls(simulator)
    assert after["gpt-oss-120b"]["starts"] == 1
    assert after["gpt-oss-20b"]["starts"] == 1
    assert after["_list"] - before["_list"] <= 20
    assert after["gpt-oss-120b"]["get"] + after["gpt-oss-20b"]["get"] <= 4


def test_dropped_connections_are_retried(gateway: Process, simulator: Process) -> None:
    """With 30 % of connections dropped, every one of 40 requests succeeds."""
    set_running(simulator, gateway, "120b", "20b")
    for name in ("120b", "20b"):
        sim_set(simulator, f"endpoints/gpt-oss-{name}", disconnect_rate=0.3)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ask(gateway), range(40)))
    assert len(answers) == 40
    assert all(completion.choices[0].message.content for _, completion in answers)


def test_failing_primary_is_bypassed_then_its_circuit_opens(gateway: Process, simulator: Process) -> None:
    """A primary answering 500 is bypassed with primary_error, then circuit_open; open, it sees ≤ 1 request."""
    set_running(simulator, gateway, "120b", "20b")
    sim_set(simulator, "endpoints/gpt-oss-120b", error_rate=1.0, error_status=500)
    reasons = []
    for _ in range(5):
        raw, _ = ask(gateway)
        assert raw.headers["x-crazy-gary-served-by"] == "20b"
        reasons.append(raw.headers["x-crazy-gary-fallback-reason"])
    assert set(reasons) == {"primary_error"}
    assert api(gateway, "GET", "/api/endpoints/status/120b", key=VIEWER_KEY).json()["circuit"] == "open"
    reached = sim_calls(simulator)["gpt-oss-120b"]["inference"]
    for _ in range(10):
        raw, _ = ask(gateway)
        assert raw.headers["x-crazy-gary-fallback-reason"] == "circuit_open"
    assert sim_calls(simulator)["gpt-oss-120b"]["inference"] - reached <= 1


def test_streams_reassemble_to_the_non_streamed_text(gateway: Process, simulator: Process) -> None:
    """A stream, also a fallen-back one, reassembles to the non-streamed answer of the same endpoint."""
    set_running(simulator, gateway, "120b", "20b")
    _, completion = ask(gateway, "120b")
    content, reasoning, response = stream_text(gateway, "120b")
    assert response.headers["x-crazy-gary-served-by"] == "120b"
    assert content == completion.choices[0].message.content
    assert reasoning == completion.choices[0].message.reasoning  # type: ignore[attr-defined]
    sim_set(simulator, "endpoints/gpt-oss-120b", state="failed")
    wait_until(lambda: status(gateway, "120b") == "error")
    _, fallback = ask(gateway, "20b")
    content, _, response = stream_text(gateway, "120b")
    assert response.headers["x-crazy-gary-served-by"] == "20b"
    assert response.headers["x-crazy-gary-fallback-reason"] == "primary_error"
    assert content == fallback.choices[0].message.content


def test_nothing_able_to_serve_is_503_with_retry_after(gateway: Process, simulator: Process) -> None:
    """With every endpoint failed, the answer is 503 in the error shape with Retry-After."""
    for name in ("120b", "20b"):
        sim_set(simulator, f"endpoints/gpt-oss-{name}", state="failed")
    for name in ("120b", "20b"):
        wait_until(lambda name=name: status(gateway, name) == "error")
    with pytest.raises(openai.APIStatusError) as raised:
        ask(gateway)
    response = raised.value.response
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["success"] is False
    assert response.json()["code"] == "no_capacity"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "model"),
        (b'{"model": "120b"}', "messages"),
        (b'{"model": 120, "messages": []}', "model"),
    ],
)
def test_malformed_requests_are_400(gateway: Process, body: bytes, problem: str) -> None:
    """Malformed chat requests get 400 in the error shape."""
    response = httpx2.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {USER_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert problem in response.json()["error"]


def test_unknown_model_is_404_and_viewer_is_403(gateway: Process) -> None:
    """An unknown model is 404; a viewer key may not use the gateway."""
    with pytest.raises(openai.NotFoundError):
        ask(gateway, "gpt-5")
    with pytest.raises(openai.PermissionDeniedError):
        client(gateway, VIEWER_KEY).chat.completions.create(model="120b", messages=MESSAGES)  # type: ignore[arg-type]


def test_models_lists_the_endpoints(gateway: Process) -> None:
    """GET /v1/models lists the configured endpoints."""
    models = {model.id for model in client(gateway).models.list()}
    assert models == {"120b", "20b"}


def test_held_stream_gets_headers_heartbeats_and_who_served(gateway: Process, simulator: Process) -> None:
    """A stream held over 4 s gets headers at once (served-by pending), heartbeats, then `: served-by`."""
    for name in ("120b", "20b"):
        sim_set(simulator, f"endpoints/gpt-oss-{name}", cold_start=6.5)
    body = {"model": "120b", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with httpx2.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        headers_at = time.monotonic() - started
        assert response.headers["x-crazy-gary-served-by"] == "pending"
        for line in response.iter_lines():
            lines.append((time.monotonic() - started, line))
    # held 4 s before the headers go (a bound slowness cannot break: it only adds time); sent before
    # the endpoint answered is what `served-by: pending` says, not a clock
    assert headers_at >= 3.5
    comments = [text for _, text in lines if text.startswith(":")]
    assert comments[0] == ": waiting for 120b"
    served = [text for text in comments if text.startswith(": served-by")]
    assert served == [": served-by 120b"]
    first_data = next(index for index, (_, text) in enumerate(lines) if text.startswith("data:"))
    assert lines[first_data - 2][1] == ": served-by 120b"
    assert [text for _, text in lines if text][-1] == "data: [DONE]"
    waits = [at for at, text in lines if text.startswith(": waiting")]
    assert all(
        later - earlier <= 5
        for earlier, later in zip([headers_at, *waits], [*waits, lines[first_data][0]], strict=False)
    )


@pytest.fixture
def slow_simulator() -> Iterator[Process]:
    """A simulator that streams ten tokens a second, so a stream lasts several seconds."""
    process = start_simulator(cold_start=30, tokens_per_second=10)
    yield process
    process.stop()


def _open_stream(gateway: Process, model: str) -> socket.socket:
    """A chat stream asked for on a raw connection, which the test can drop at any moment."""
    body = json.dumps({"model": model, "messages": MESSAGES, "stream": True}).encode()
    port = int(gateway.url.rsplit(":", 1)[1])
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {USER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return connection


def test_a_caller_who_leaves_a_stream_is_let_go(slow_simulator: Process) -> None:
    """A caller who drops a stream halfway is no longer in flight within a second or two, long before
    the stream would have ended; one who leaves while the stream is held for a cold start is no
    longer held or in flight once its headers would have gone."""
    gateway = start_server(slow_simulator, CRAZY_GARY_FALLBACK_WAIT="60")
    try:
        sim_set(slow_simulator, "endpoints/gpt-oss-20b", state="running")
        wait_until(lambda: status_of(gateway, "20b")["status"] == "running")
        connection = _open_stream(gateway, "20b")
        assert b"data:" in connection.recv(65536) + connection.recv(65536)
        assert status_of(gateway, "20b")["in_flight"] == 1
        dropped = time.monotonic()
        connection.close()
        wait_until(lambda: status_of(gateway, "20b")["in_flight"] == 0, timeout=3)
        assert time.monotonic() - dropped < 3  # the answer alone streams for about ten seconds

        connection = _open_stream(gateway, "120b")  # asleep: woken, with a cold start of 30 s
        wait_until(lambda: status_of(gateway, "120b")["pending"] == 1)
        connection.close()
        wait_until(lambda: status_of(gateway, "120b")["pending"] == 0, timeout=8)
        assert status_of(gateway, "120b")["in_flight"] == 0
    finally:
        gateway.stop()


def test_an_endpoint_gone_cold_behind_our_back_still_answers(simulator: Process) -> None:
    """An endpoint that scaled to zero since it was last read answers 503 and starts; the request is
    not failed (and the circuit not charged): it waits for the cold start and is served by it."""
    # Running before the gateway starts, and no operation of ours (not even HF's idle timer set at
    # start): once read running, the endpoint is read once more at most, 5 s later (its model was
    # loading at the first reading), then not for a minute.
    sim_set(simulator, "endpoints/gpt-oss-20b", state="running")
    gateway = start_server(
        simulator,
        CRAZY_GARY_POLL_INTERVAL="60",
        CRAZY_GARY_POLL_FAST_INTERVAL="5",
        CRAZY_GARY_RETRY_ATTEMPTS="2",
        CRAZY_GARY_HF_SCALE_TO_ZERO="off",
    )
    try:
        wait_until(lambda: status(gateway, "20b") == "running")
        starts = sim_calls(simulator)["gpt-oss-20b"]["starts"]
        sim_set(simulator, "endpoints/gpt-oss-20b", state="scaledToZero")  # HF's own idle policy, say
        assert status(gateway, "20b") == "running"  # not read again for a minute
        raw, completion = ask(gateway, "20b")
        assert raw.headers["x-crazy-gary-served-by"] == "20b"
        assert completion.choices[0].message.content
        assert status_of(gateway, "20b")["circuit"] == "closed"
        assert sim_calls(simulator)["gpt-oss-20b"]["starts"] == starts + 1  # the request's
    finally:
        gateway.stop()


def metric(server: Process, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in api(server, "GET", "/metrics", key=VIEWER_KEY).text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


def test_retries_are_counted_once_in_metrics(gateway: Process, simulator: Process) -> None:
    """At a 50 % 502 rate /metrics counts each retry once (calls less tries), with no stamina log."""
    set_running(simulator, gateway, "120b", "20b")
    before = sim_calls(simulator)
    sim_set(simulator, "endpoints/gpt-oss-120b", error_rate=0.5, error_status=502)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ask(gateway), range(20)))
    assert all(completion.choices[0].message.content for _, completion in answers)
    after = sim_calls(simulator)
    calls = sum(
        after[name]["inference"] - before[name]["inference"] for name in ("gpt-oss-120b", "gpt-oss-20b")
    )
    reasons = [raw.headers.get("x-crazy-gary-fallback-reason") for raw, _ in answers]
    tried = sum(2 if reason == "primary_error" else 1 for reason in reasons)  # circuit_open: 20b only
    retries = metric(gateway, "crazy_gary_retries_total", endpoint="120b")
    assert retries >= 3  # 15 expected: each request is retried with probability 1/2, then 1/4
    assert retries == calls - tried
    output = gateway.stop()
    assert "<context block>" not in output and "stamina" not in output
