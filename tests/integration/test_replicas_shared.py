"""`serve` replicas on one PostgreSQL and one Redis: rate limits, audit, wakes, circuits, events, quotas."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import openai
import redis

from crazy_gary.cli.watch import parse_events

from ._replicas import _chat, on_redis, replicas
from .conftest import (
    OPERATOR_KEY,
    REDIS,
    USER_KEY,
    VIEWER_KEY,
    Process,
    api,
    sim_calls,
    sim_set,
    status_of,
    wait_until,
)
from .test_postgresql import database  # noqa: F401 - the fixture: a PostgreSQL database of the test's own


def test_the_management_rate_limit_and_the_audit_log_are_shared(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """With 3 wakes and sleeps a minute, the fourth call gets 429 whichever replica it reaches; a wake
    through one replica is in the audit log read through the other."""
    first, second = replicas(
        simulator, 2, **on_redis(database, prefix, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="3/minute")
    )
    try:
        answers = [
            api(first, "POST", "/api/endpoints/wake/20b"),
            api(second, "POST", "/api/endpoints/sleep/120b"),  # asleep already: 200, and it counts
            api(first, "POST", "/api/endpoints/wake/120b"),
        ]
        assert all(answer.status_code in (200, 202) for answer in answers), [a.text for a in answers]
        assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0"]
        fourth = api(second, "POST", "/api/endpoints/sleep/20b")
        assert fourth.status_code == 429
        assert fourth.json()["code"] == "rate_limited"
        assert int(fourth.headers["Retry-After"]) >= 1
        assert api(first, "POST", "/api/endpoints/wake/20b").status_code == 429

        def wakes_seen_by_second() -> list[str]:
            entries = api(second, "GET", "/api/endpoints/audit?operation=wake", key=VIEWER_KEY).json()[
                "entries"
            ]
            return sorted(
                entry["model_type"] for entry in entries if entry["success"] and entry["actor"] == "ops"
            )

        # Each wake is written when accepted and completed when the endpoint is up: wait for both outcomes.
        wait_until(lambda: wakes_seen_by_second() == ["120b", "20b"])
        for replica in (first, second):
            assert api(replica, "GET", "/readyz").json()["status"] == "ready"
    finally:
        first.stop()
        second.stop()


def test_thirty_requests_over_two_replicas_wake_a_sleeping_endpoint_once(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """Thirty chat requests for a sleeping (paused) 20b, split over two replicas at once, all succeed;
    Hugging Face sees one request to start it and one cold start."""
    first, second = replicas(simulator, 2, **on_redis(database, prefix))
    try:
        # A paused endpoint, started by a resume, and slow answers from HF: the second replica reads
        # `paused` while the first one's resume is still on its way, so only the shared claim keeps it
        # from asking too.
        sim_set(simulator, "endpoints/gpt-oss-20b", state="paused")
        for replica in (first, second):
            wait_until(lambda replica=replica: status_of(replica, "20b")["hf_state"] == "paused")
        sim_set(simulator, "management", latency_ms=300)
        before = sim_calls(simulator)["gpt-oss-20b"]

        def ask(index: int) -> str | None:
            replica = (first, second)[index % 2]
            chat = openai.OpenAI(api_key=USER_KEY, base_url=f"{replica.url}/v1", max_retries=0, timeout=60)
            answer = chat.chat.completions.create(model="20b", messages=[{"role": "user", "content": "hi"}])
            return answer.choices[0].message.content

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(ask, range(30)))
        assert all(answers)
        after = sim_calls(simulator)["gpt-oss-20b"]
        assert after["starts"] - before["starts"] == 1
        assert after["resume"] - before["resume"] == 1
    finally:
        first.stop()
        second.stop()


def _subscribers(channel: str) -> int:
    client = redis.Redis.from_url(REDIS)
    try:
        return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))
    finally:
        client.close()


def test_a_circuit_opened_through_one_replica_is_open_on_the_others(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """Failures through one replica open the primary's circuit there; the other replica's opens too
    within seconds, and its requests fall back without reaching the failing endpoint."""
    first, second = replicas(simulator, 2, **on_redis(database, prefix, CRAZY_GARY_BREAKER_COOLDOWN="60"))
    try:
        for name in ("gpt-oss-120b", "gpt-oss-20b"):
            sim_set(simulator, f"endpoints/{name}", state="running")
        for replica in (first, second):
            for key in ("120b", "20b"):
                wait_until(lambda r=replica, k=key: status_of(r, k)["status"] == "running")
        sim_set(simulator, "endpoints/gpt-oss-120b", error_rate=1.0, error_status=500)
        for _ in range(5):
            _chat(first, "120b")  # served by the fallback
        assert status_of(first, "120b")["circuit"] == "open"
        wait_until(lambda: status_of(second, "120b")["circuit"] == "open", timeout=5)
        reached = sim_calls(simulator)["gpt-oss-120b"]["inference"]
        for _ in range(3):
            _chat(second, "120b")
        assert sim_calls(simulator)["gpt-oss-120b"]["inference"] == reached
    finally:
        first.stop()
        second.stop()


def test_every_replica_streams_what_happens_through_the_others(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """A dashboard connected to one replica sees a wake asked through another (its operation events)
    and a request served through it (its request event)."""
    first, second = replicas(simulator, 2, **on_redis(database, prefix))
    events: list[tuple[str, Any]] = []
    stream = httpx2.Client(timeout=httpx2.Timeout(30, read=None)).send(
        httpx2.Request(
            "GET", f"{second.url}/api/endpoints/events", headers={"Authorization": f"Bearer {VIEWER_KEY}"}
        ),
        stream=True,
    )

    def read() -> None:
        with contextlib.suppress(httpx2.HTTPError):  # closed at the end of the test
            for event in parse_events(stream.iter_lines()):
                events.append(event)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: events)
        wait_until(lambda: _subscribers(f"{prefix}events") == 2)  # both relays listen
        assert api(first, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        _chat(first)
        # the operator's wake, started then finished (HF's idle timer, set at start, is crazy-gary's own)
        operations = lambda: [d["phase"] for n, d in list(events) if n == "operation" and d["actor"] == "ops"]  # noqa: E731
        wait_until(lambda: "finished" in operations())
        assert operations()[0] == "started"
        request = wait_until(lambda: next((d for n, d in list(events) if n == "request"), None))
        assert (request["model"], request["served_by"], request["status"]) == ("20b", "20b", 200)
    finally:
        stream.close()
        first.stop()
        second.stop()


def test_a_daily_quota_holds_across_two_replicas(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
    tmp_path: Any,
) -> None:
    """2,000 tokens a day for `app`: 60 requests split over two replicas, 20 at a time, let at most
    2,000 tokens through (one count in Redis), the rest get 429 and reach no endpoint; the operator's
    key is not limited; both replicas report the same use."""
    config = tmp_path / "crazy-gary.toml"
    config.write_text("[quotas.app]\ntokens_per_day = 2000\n")
    sim_set(simulator, "endpoints/gpt-oss-20b", state="running")
    first, second = replicas(simulator, 2, **on_redis(database, prefix, CRAZY_GARY_CONFIG=str(config)))
    try:
        for replica in (first, second):
            wait_until(lambda replica=replica: status_of(replica, "20b")["status"] == "running")
        before = sim_calls(simulator)["gpt-oss-20b"]["inference"]
        body = {"model": "20b", "messages": [{"role": "user", "content": "Why sleep?"}], "max_tokens": 40}

        refusals: list[tuple[str, int]] = []  # (code, Retry-After seconds) of each 429

        def ask(index: int, key: str = USER_KEY) -> tuple[int, int]:
            answer = api((first, second)[index % 2], "POST", "/v1/chat/completions", key=key, json=body)
            if answer.status_code == 429:
                refusals.append((answer.json()["code"], int(answer.headers["Retry-After"])))
            return answer.status_code, answer.json()["usage"][
                "total_tokens"
            ] if answer.status_code == 200 else 0

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(ask, range(60)))
        through = [used for status, used in answers if status == 200]
        assert sum(through) <= 2000 and len(through) >= 15
        assert {status for status, _ in answers if status != 200} == {429}
        assert len(refusals) == 60 - len(through)
        assert all(code == "quota_exceeded" and 1 <= wait <= 86_400 for code, wait in refusals)
        assert sim_calls(simulator)["gpt-oss-20b"]["inference"] - before == len(through)
        with ThreadPoolExecutor(10) as pool:
            assert {status for status, _ in pool.map(lambda i: ask(i, OPERATOR_KEY), range(10))} == {200}
        reports = [
            api(replica, "GET", "/api/usage").json()["quotas"]["app"]["tokens_per_day"]["used"]
            for replica in (first, second)
        ]
        assert reports == [sum(through)] * 2
    finally:
        first.stop()
        second.stop()
