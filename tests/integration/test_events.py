"""The event stream of `serve`, read as the page and `watch` read it, while the gateway works."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import httpx2
import openai

from crazy_gary.cli.watch import parse_events

from .conftest import USER_KEY, VIEWER_KEY, Process, free_port, server_env, start, wait_until


def test_a_request_at_a_sleeping_endpoint_tells_the_whole_story(simulator: Process) -> None:
    """One chat at a sleeping 20b: the stream tells the gateway's wake starting, 20b starting then
    running, the wake finishing, the request served by 20b, and 20b's countdown reset."""
    port = free_port()
    server = start(
        ["serve", "--no-simulate", "--port", str(port)],
        server_env(simulator),
        f"http://127.0.0.1:{port}",
        "/readyz",
    )
    events: list[tuple[str, Any]] = []
    stream = httpx2.Client(timeout=httpx2.Timeout(30, read=None)).send(
        httpx2.Request(
            "GET", f"{server.url}/api/endpoints/events", headers={"Authorization": f"Bearer {VIEWER_KEY}"}
        ),
        stream=True,
    )

    def read() -> None:
        with contextlib.suppress(httpx2.HTTPError):  # the stream is closed at the end of the test
            for event in parse_events(stream.iter_lines()):
                events.append(event)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: events)
        assert events[0][0] == "snapshot"
        assert events[0][1]["endpoints"]["20b"]["status"] == "sleeping"
        chat = openai.OpenAI(api_key=USER_KEY, base_url=f"{server.url}/v1", max_retries=0, timeout=60)
        answer = chat.chat.completions.create(model="20b", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        wait_until(lambda: any(name == "countdown" for name, _ in events))
    finally:
        stream.close()
        server.stop()
    story = [
        (name, data.get("phase") or (data.get("endpoint") or {}).get("status") or data.get("served_by"))
        for name, data in events[1:]
        if data.get("model_type", "20b") == "20b"
    ]
    assert story[0] == ("operation", "started")
    assert ("state", "starting") in story
    assert story.index(("state", "running")) < story.index(("operation", "finished"))
    assert story[-2:] == [("request", "20b"), ("countdown", "running")]
    started = next(data for name, data in events if name == "operation")
    assert started["actor"].startswith("gateway")
    request = next(data for name, data in events if name == "request")
    assert request["model"] == "20b"
    assert request["fallback_reason"] is None
    assert request["status"] == 200
    assert request["latency_ms"] > 0
    countdown = events[-1][1]
    assert 15 * 60 - 5 <= countdown["endpoint"]["auto_sleep_in"] <= 15 * 60  # reset by the request
