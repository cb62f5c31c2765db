"""Webhooks: signed bodies delivered to a real receiver on a loopback socket, retried, bounded, a daily
cost summary on the manual clock, and dead receivers that never slow a request."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web
from prometheus_client import Counter

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.usage.attribution import EndpointCost
from crazy_gary.web import create_app
from crazy_gary.webhooks import Webhooks

from .conftest import fast_retries, serve_app
from .core._specs import SPECS
from .core.fakes import FakeManagement
from .web._served import ALICE, USER, serve_with_simulator

SECRET = "webhook-secret-for-tests"
OPERATOR = "op-key-123456"
MIDNIGHT = dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp()  # the end of 2026-12-01
CHAT = {"model": "120b", "messages": [{"role": "user", "content": "Why do large models sleep?"}]}


@dataclass(frozen=True)
class Post:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class Receiver:
    """A webhook receiver: records every POST, answers the statuses of `answers` first, then 200;
    with `hang`, answers nothing until `release` is set."""

    def __init__(self, answers: tuple[int, ...] = (), *, hang: bool = False) -> None:
        self.posts: list[Post] = []
        self.answers = list(answers)
        self.hang = hang
        self.release = asyncio.Event()
        self.changed = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        post = Post(dict(request.headers), await request.read())
        async with self.changed:
            self.posts.append(post)
            self.changed.notify_all()
        if self.hang:
            await self.release.wait()
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def until(self, condition: Callable[[Receiver], bool], within: float = 10.0) -> None:
        """Wait until `condition(self)` holds after a POST (a real-time deadline, never a sleep)."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: condition(self))

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        return [post.json for post in self.posts if event is None or post.json["event"] == event]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, path: str = "/hook") -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()


def closed_port_url() -> str:
    """An address nothing listens on, with a path and a query a log must never show."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/services/T0/B0/PATHSECRET?token=QUERYSECRET"


def verify(post: Post) -> None:
    """What a receiver does: the signature is the HMAC-SHA256 of the body's exact bytes."""
    expected = "sha256=" + hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post.headers["X-Crazy-Gary-Signature"], expected)
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-Crazy-Gary-Event"] == post.json["event"]
    assert post.headers["X-Crazy-Gary-Delivery"] == post.json["id"]


@dataclass
class Gary:
    http: httpx2.AsyncClient
    clock: ManualClock
    hf: FakeManagement
    app: Any

    def counted(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return float(value or 0.0)


@contextlib.asynccontextmanager
async def gary(
    monkeypatch: pytest.MonkeyPatch, *urls: str, start: float = 1_700_000_000.0, **variables: Any
) -> AsyncIterator[Gary]:
    """crazy-gary on a loopback socket and the manual clock, against the in-memory management API
    (120b asleep, 20b running), sending webhooks to `urls` signed with SECRET."""
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        CRAZY_GARY_SIMULATE=True,
        CRAZY_GARY_API_KEYS=f"ops:operator:{OPERATOR}",
        CRAZY_GARY_WEBHOOKS=",".join(urls),
        CRAZY_GARY_WEBHOOK_SECRET=SECRET,
        **variables,
    )
    clock = ManualClock(start=start)
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    app = create_app(settings, clock=clock, management=hf)
    with fast_retries():
        async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
            await clock.settle()
            yield Gary(http, clock, hf, app)


def running(receiver: Receiver) -> bool:
    return any(
        b["details"]["status"] == "running"
        for b in receiver.bodies("state_change")
        if b["endpoint"] == "120b"
    )


async def test_a_wake_sends_signed_state_changes_with_a_slack_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waking 120b through the API sends signed JSON state changes, the last one saying in its `text`
    that 120b now runs, at the clock's time it began to."""
    async with receiving(Receiver()) as receiver, gary(monkeypatch, receiver.url) as it:
        wake = await it.http.post("/api/endpoints/wake/120b", headers={"Authorization": f"Bearer {OPERATOR}"})
        assert wake.status_code == 202
        woken = it.clock.now()
        await it.clock.advance(21)
        await receiver.until(running)
        for post in receiver.posts:
            verify(post)
        last = [b for b in receiver.bodies("state_change") if b["endpoint"] == "120b"][-1]
        assert last["text"] == "crazy-gary: 120b is now running (was starting)"
        assert (last["details"]["status"], last["details"]["previous_status"]) == ("running", "starting")
        assert last["details"]["hf_state"] == "running"
        assert dt.datetime.fromisoformat(last["at"]).timestamp() == woken + 20  # the fake's cold start
        assert it.counted(
            "crazy_gary_webhook_deliveries_total", event="state_change", result="delivered"
        ) == len(receiver.bodies("state_change"))


async def test_a_500_is_tried_again_with_the_same_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver that answers 500 once gets the same body (same delivery id, same signature) again,
    then every later one: one retry counted, nothing failed."""
    async with receiving(Receiver(answers=(500,))) as receiver, gary(monkeypatch, receiver.url) as it:
        await receiver.until(lambda r: len(r.posts) >= 3)  # the first state change twice, then the next
        first, again, *_ = receiver.posts
        assert (
            first.body == again.body
            and first.headers["X-Crazy-Gary-Signature"] == again.headers["X-Crazy-Gary-Signature"]
        )
        verify(again)
        assert receiver.posts[2].json["id"] != first.json["id"]
        assert it.counted("crazy_gary_webhook_retries_total", event="state_change") == 1
        assert it.counted("crazy_gary_webhook_deliveries_total", event="state_change", result="failed") == 0


async def test_a_wake_that_times_out_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wake that outlives ENDPOINT_WAKE_TIMEOUT sends a `wake_timeout` webhook for its endpoint."""
    async with (
        receiving(Receiver()) as receiver,
        gary(monkeypatch, receiver.url, ENDPOINT_WAKE_TIMEOUT=60) as it,
    ):
        it.hf.cold_start = 1000
        await it.http.post("/api/endpoints/wake/120b", headers={"Authorization": f"Bearer {OPERATOR}"})
        await it.clock.advance(61)
        await receiver.until(lambda r: bool(r.bodies("wake_timeout")))
        (timeout,) = receiver.bodies("wake_timeout")
        assert timeout["endpoint"] == "120b"
        assert timeout["details"]["wake_timeout"] == 60
        assert (
            timeout["text"] == "crazy-gary: 120b did not start within 60 s: the wake failed, it is in error"
        )


async def test_the_daily_cost_summary_follows_the_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """At UTC midnight of the clock, a `daily_cost` webhook gives the day that ended: 20b ran its
    last hour at $5 an hour, 120b slept."""
    async with (
        receiving(Receiver()) as receiver,
        gary(monkeypatch, receiver.url, start=MIDNIGHT - 3600, ENDPOINT_AUTO_SLEEP=0) as it,
    ):
        await it.clock.advance(3599)
        assert receiver.bodies("daily_cost") == []
        await it.clock.advance(2)
        await receiver.until(lambda r: bool(r.bodies("daily_cost")))
        (summary,) = receiver.bodies("daily_cost")
        assert summary["details"]["day"] == "2026-12-01"
        assert summary["details"]["endpoints"] == {
            "120b": {"cost": 0.0, "price_per_hour": 5.0},
            "20b": {"cost": 5.0, "price_per_hour": 5.0},
        }
        assert summary["details"]["total"] == 5.0
        assert summary["text"] == "crazy-gary: 2026-12-01 cost $5.00 (120b $0.00, 20b $5.00)"


async def test_the_summary_is_sent_once_a_day_for_the_day_that_ended() -> None:
    """Three days of the manual clock give three summaries, each of the day before, each asking for
    exactly that day's costs."""
    clock = ManualClock(start=MIDNIGHT - 10)
    asked: list[tuple[float, float]] = []

    def costs(since: float, until: float) -> dict[str, EndpointCost]:
        asked.append((since, until))
        return {"20b": EndpointCost(1.5, 5.0)}

    async with receiving(Receiver()) as receiver:
        manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
        webhooks = Webhooks([receiver.url], manager, clock, costs=costs)
        await webhooks.start()
        try:
            await clock.advance(3 * 86_400)
            await receiver.until(lambda r: len(r.posts) == 3)
        finally:
            await webhooks.close()
    assert [b["details"]["day"] for b in receiver.bodies()] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert asked == [(MIDNIGHT + day * 86_400 - 86_400, MIDNIGHT + day * 86_400) for day in range(3)]


def counted(counter: Counter, **labels: str) -> float:
    """A counter's value for `labels`, read as a scrape would."""
    values = [
        s.value
        for m in counter.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels == labels
    ]
    return sum(values)


@contextlib.contextmanager
def webhook_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    lines: list[str] = []
    with caplog.at_level(logging.WARNING, logger="crazy_gary.webhooks"):
        yield lines
        lines.extend(r.getMessage() for r in caplog.records if r.name == "crazy_gary.webhooks")


async def test_a_full_queue_drops_the_oldest_counts_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    """With a queue of 2 behind a receiver that does not answer, 5 more bodies drop the 3 oldest
    (counted, logged once); once it answers, the one it held and the 2 newest arrive in order."""
    clock = ManualClock()
    async with receiving(Receiver(hang=True)) as receiver:
        manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
        webhooks = Webhooks([receiver.url], manager, clock, queue_size=2)
        await webhooks.start()
        try:
            with webhook_logs(caplog) as logs:
                webhooks.send("state_change", {"n": 0}, "0")
                await receiver.until(lambda r: len(r.posts) == 1)
                for n in range(1, 6):
                    webhooks.send("state_change", {"n": n}, str(n))
            assert counted(webhooks.counters.deliveries, event="state_change", result="dropped") == 3
            assert len([line for line in logs if "full" in line]) == 1
            receiver.hang = False
            receiver.release.set()
            await receiver.until(lambda r: len(r.posts) == 3)
        finally:
            await webhooks.close()
    assert [b["details"]["n"] for b in receiver.bodies()] == [0, 4, 5]


async def test_dead_receivers_never_slow_requests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With one receiver that never answers and one address nothing listens on, requests are answered
    (a circuit opening and a quota refusal among them) while the first still holds its first body;
    a live receiver next to them gets `circuit_open` and one `quota_crossed`; the dead address is given
    up on with a warning that shows neither its path nor its query."""
    dead = closed_port_url()
    toml = "[quotas.alice]\ntokens_per_day = 2000\n"
    async with receiving(Receiver(hang=True)) as stuck, receiving(Receiver()) as live:
        monkeypatch.setenv("CRAZY_GARY_WEBHOOKS", f"{stuck.url},{dead},{live.url}")
        monkeypatch.setenv("CRAZY_GARY_BREAKER_FAILURES", "3")
        with webhook_logs(caplog) as logs, fast_retries():
            async with serve_with_simulator(monkeypatch, tmp_path, toml) as served:
                await stuck.until(lambda r: len(r.posts) == 1)
                await served.sim_set("endpoints/gpt-oss-120b", error_rate=1.0, error_status=500)
                auth = {"Authorization": f"Bearer {USER}"}
                for _ in range(6):  # 120b fails three times, its circuit opens, 20b answers all
                    answer = await served.run(
                        served.http.post(f"{served.url}/v1/chat/completions", json=CHAT, headers=auth)
                    )
                    assert answer.status_code == 200
                    assert answer.headers["x-crazy-gary-served-by"] == "20b"
                refused = [
                    await served.run(
                        served.http.post(
                            f"{served.url}/v1/chat/completions",
                            json={**CHAT, "max_tokens": 5000},
                            headers={"Authorization": f"Bearer {ALICE}"},
                        )
                    )
                    for _ in range(3)
                ]
                assert [answer.status_code for answer in refused] == [429, 429, 429]
                assert len(stuck.posts) == 1  # all of this while the stuck receiver still holds its first
                await live.until(lambda r: bool(r.bodies("circuit_open")) and bool(r.bodies("quota_crossed")))
                (opened,) = live.bodies("circuit_open")
                assert opened["endpoint"] == "120b" and "20b answers instead" in opened["text"]
                (crossed,) = live.bodies("quota_crossed")  # one crossing, not one per refusal
                assert (
                    crossed["details"]["key"] == "alice" and crossed["details"]["window"] == "tokens_per_day"
                )
                counters = served.app.state.webhooks.counters

                async def given_up() -> bool:  # the dead address, after its three attempts
                    return counted(counters.deliveries, event="circuit_open", result="failed") == 1

                await served.until(given_up, within=10)
                assert counted(counters.deliveries, event="circuit_open", result="delivered") == 1
    assert any("given up after 3 attempts" in line and "http://127.0.0.1:" in line for line in logs)
    assert not any("PATHSECRET" in line or "QUERYSECRET" in line for line in logs)
    assert any("not delivered: the server stopped" in line for line in logs)  # what the stuck one held
