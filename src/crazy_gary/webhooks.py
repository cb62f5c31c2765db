"""Webhooks: a JSON POST to each address of `CRAZY_GARY_WEBHOOKS` for every state change, wake
timeout, circuit opening, quota crossing, and a cost summary after each UTC day (README, "Webhooks").

Nothing here is on a request's path. The observers (of the manager and of the event hub) only build
a body and append it to each address's bounded queue; a full queue drops its oldest body, logged and
counted. One supervised task per address delivers its queue in order, so a dead receiver holds up
neither a request nor the other receivers. A delivery is tried `attempts` times with exponential
backoff and jitter (stamina, as for the endpoints), each attempt within `attempt_timeout` seconds: a
2xx delivers it; a 408, 429 (its Retry-After honoured) or 5xx, a timeout or a connection fault is
tried again; another answer gives up at once. Logs show an address's scheme and host only: the path
of a Slack webhook is its secret.

Among replicas every one sees each state change and reads the same costs: those two are sent by the
leader only; wake timeouts, circuit openings and quota crossings by the replica they happened on.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import stamina
from prometheus_client import Counter

from crazy_gary.clock import Clock
from crazy_gary.core.manager import HuggingFaceEndpointManager, ManagerEvent
from crazy_gary.core.supervisor import ErrorHook, Supervisor, stop
from crazy_gary.usage.attribution import EndpointCost

__all__ = ["SIGNATURE_HEADER", "WebhookCounters", "Webhooks", "shown_address", "signature"]

logger = logging.getLogger("crazy_gary.webhooks")

SIGNATURE_HEADER = "X-Crazy-Gary-Signature"
QUEUE_SIZE = 1000  # bodies waiting for one receiver; then the oldest is dropped
ATTEMPTS = 5
ATTEMPT_TIMEOUT = 10.0  # seconds for one attempt, connection to answer
WAIT_INITIAL, WAIT_MAX = 1.0, 60.0  # seconds of backoff between attempts, doubled each time
MAX_RETRY_AFTER = 300.0
DAY = 86_400.0
_SLEEP_AT_MOST = 3600.0  # the wait for midnight is re-measured every hour: the wall clock may move
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_WINDOWS = {"tokens_per_day": "daily", "tokens_per_month": "monthly"}

CostsBetween = Callable[[float, float], Mapping[str, EndpointCost]]
"""What each managed endpoint was billed within [since, until] (`Recorder.costs_between`)."""


def signature(body: bytes, secret: str) -> str:
    """The `X-Crazy-Gary-Signature` of `body`: `sha256=` and the hex HMAC-SHA256 of it under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown_address(url: str) -> str:
    """What a log may show of a webhook address: its scheme, host and port."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookCounters:
    """`crazy_gary_webhook_deliveries_total{event,result}` (`delivered`, `failed`, `dropped`) and
    `crazy_gary_webhook_retries_total{event}`; registered into the app's registry by the app."""

    def __init__(self) -> None:
        self.deliveries = Counter(
            "crazy_gary_webhook_deliveries",
            "Webhook bodies by outcome: delivered, failed (every attempt failed, or refused), dropped"
            " (the receiver's queue was full, or the server stopped first).",
            ["event", "result"],
            registry=None,
        )
        self.retries = Counter(
            "crazy_gary_webhook_retries", "Webhook deliveries attempted again.", ["event"], registry=None
        )


@dataclass(frozen=True)
class _Body:
    event: str
    id: str
    data: bytes


@dataclass(eq=False)
class _Receiver:
    """One address: its queue and whether its drops are being logged."""

    url: str
    shown: str
    queue: collections.deque[_Body] = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sending: _Body | None = None
    dropping: bool = False  # a drop was logged; the next is logged once the queue has emptied


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"answered {status}")
        self.status = status
        self.retry_after = retry_after


class _Refused(Exception):
    """An answer that trying again will not change (a 4xx other than 408 and 429, or a redirect)."""


def _retry_on(exc: Exception) -> bool | float:
    """stamina's hook: retry a retryable status (after its Retry-After, if any) and transport faults."""
    if isinstance(exc, _RetryableStatus):
        return exc.retry_after if exc.retry_after is not None else True
    if isinstance(exc, aiohttp.InvalidURL):
        return False
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the usual backoff instead


class Webhooks:
    """Sends the manager's notable events, quota crossings and a daily cost summary to `urls`."""

    def __init__(
        self,
        urls: Sequence[str],
        manager: HuggingFaceEndpointManager,
        clock: Clock,
        *,
        secret: str | None = None,
        costs: CostsBetween | None = None,
        counters: WebhookCounters | None = None,
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self._receivers = [_Receiver(url, shown_address(url)) for url in urls]
        self._manager = manager
        self._clock = clock
        self._secret = secret or None
        self._costs = costs
        self.counters = counters or WebhookCounters()
        self._queue_size = queue_size
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout)
        self._states = {key: (view.status.value, view.hf_state) for key, view in manager.all_status().items()}
        self._crossed: dict[tuple[str, str], float] = {}  # (key, window) → when its window ends
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        manager.subscribe(self.on_manager_event)

    async def start(self, on_error: ErrorHook | None = None) -> None:
        """Start one delivery task per address and the daily summary, under a supervisor."""
        supervisor = Supervisor(self._clock, on_error)
        for number, receiver in enumerate(self._receivers, start=1):
            deliver = functools.partial(self._deliver_next, receiver)
            self._tasks.append(supervisor.loop(f"webhook-{number}", deliver))
        if (costs := self._costs) is not None:
            self._tasks.append(supervisor.loop("webhook-daily-cost", lambda: self._daily_summary(costs)))

    async def close(self) -> None:
        """Stop delivering; what was still queued or being sent is logged and counted as dropped."""
        await stop(self._tasks)
        self._tasks.clear()
        for receiver in self._receivers:
            left = [*([receiver.sending] if receiver.sending else []), *receiver.queue]
            receiver.sending = None
            receiver.queue.clear()
            for body in left:
                self.counters.deliveries.labels(event=body.event, result="dropped").inc()
            if left:
                logger.warning(
                    "%d webhooks to %s not delivered: the server stopped", len(left), receiver.shown
                )
        if self._session is not None:
            await self._session.close()

    # -- what is sent (observers: they never block) ----------------------------------------------
    def on_manager_event(self, event: ManagerEvent) -> None:
        """A webhook for a change of crazy-gary's state (sent by the leader), a wake timeout or a
        circuit opening."""
        if event.kind == "state" and event.status is not None:
            before = self._states.get(event.key, ("unknown", None))
            self._states[event.key] = (event.status, event.hf_state)
            if self._manager.leading:
                self._state_changed(event.key, before, (event.status, event.hf_state))
        elif event.kind == "operation_done" and event.timed_out:
            wait = self._manager.wake_timeout(event.key)
            details = {"operation": event.operation, "wake_timeout": wait, "error": event.error}
            text = f"{event.key} did not start within {wait:g} s: the wake failed, it is in error"
            self.send("wake_timeout", details, text, endpoint=event.key)
        elif event.kind == "circuit_open":
            self._circuit_opened(event.key)

    def _state_changed(self, key: str, before: tuple[str, str | None], after: tuple[str, str | None]) -> None:
        details = {"status": after[0], "hf_state": after[1], "previous_status": before[0]}
        details["previous_hf_state"] = before[1]
        if after[0] != before[0]:  # HF's steps within one state (pending, then initializing) are not news
            self.send("state_change", details, f"{key} is now {after[0]} (was {before[0]})", endpoint=key)

    def _circuit_opened(self, key: str) -> None:
        cooldown = self._manager.endpoint(key).breaker.cooldown
        fallback = self._manager.spec(key).fallback
        text = f"the circuit of {key} opened after repeated failures: no requests go to it for {cooldown:g} s"
        if fallback is not None:
            text += f", {fallback} answers instead"
        self.send("circuit_open", {"cooldown": cooldown, "fallback": fallback}, text, endpoint=key)

    def on_quota_exceeded(self, key: str, model_type: str, window: str, retry_after: int) -> None:
        """A webhook the first time a key's quota refuses a request in a window (its crossing); the
        next refusals of that window send nothing."""
        now = self._clock.now()
        if self._crossed.get((key, window), now) > now:
            return
        self._crossed[(key, window)] = resets_at = now + retry_after
        details = {"key": key, "window": window, "retry_after": retry_after, "resets_at": _iso(resets_at)}
        text = (
            f"{key} used up its {_WINDOWS.get(window, window)} token quota: its requests are refused"
            f" until {_iso(resets_at)}"
        )
        self.send("quota_crossed", details, text, endpoint=model_type)

    async def _daily_summary(self, costs_between: CostsBetween) -> None:
        """One pass: wait for the next UTC midnight of the clock, then (the leader) send the day's costs."""
        until = (self._clock.now() // DAY + 1) * DAY
        while (left := until - self._clock.now()) > 0:
            await self._clock.sleep(min(left, _SLEEP_AT_MOST))
        if not self._manager.leading:
            return
        since = until - DAY
        costs = costs_between(since, until)
        endpoints = {
            key: {"cost": round(cost.cost, 6), "price_per_hour": cost.price_per_hour}
            for key, cost in sorted(costs.items())
        }
        total = round(sum(cost.cost for cost in costs.values()), 6)
        day = dt.datetime.fromtimestamp(since, dt.UTC).date().isoformat()
        shares = ", ".join(f"{key} ${cost.cost:.2f}" for key, cost in sorted(costs.items()))
        details = {
            "day": day,
            "since": _iso(since),
            "until": _iso(until),
            "total": total,
            "endpoints": endpoints,
        }
        self.send("daily_cost", details, f"{day} cost ${total:.2f}" + (f" ({shares})" if shares else ""))

    def send(self, event: str, details: Mapping[str, Any], text: str, *, endpoint: str | None = None) -> None:
        """Queue one body for every address: `event`, `id`, `at`, `endpoint`, `text` (prefixed
        `crazy-gary: `, the line a Slack incoming webhook shows) and `details`."""
        delivery = uuid.uuid4().hex
        document = {
            "event": event,
            "id": delivery,
            "at": _iso(self._clock.now()),
            "endpoint": endpoint,
            "text": f"crazy-gary: {text}",
            "details": dict(details),
        }
        body = _Body(event, delivery, json.dumps(document, separators=(",", ":")).encode())
        for receiver in self._receivers:
            self._enqueue(receiver, body)

    def _enqueue(self, receiver: _Receiver, body: _Body) -> None:
        if len(receiver.queue) >= self._queue_size:
            dropped = receiver.queue.popleft()
            self.counters.deliveries.labels(event=dropped.event, result="dropped").inc()
            if not receiver.dropping:
                receiver.dropping = True
                logger.warning(
                    "webhook queue of %s full (%d waiting): the oldest are dropped",
                    receiver.shown,
                    self._queue_size,
                )
        receiver.queue.append(body)
        receiver.ready.set()

    # -- delivery ---------------------------------------------------------------------------------
    async def _deliver_next(self, receiver: _Receiver) -> None:
        """One pass of a receiver's task: wait for a body, then deliver it (or give up on it)."""
        if receiver.sending is not None:  # lost to an unexpected error, which the supervisor logged
            self.counters.deliveries.labels(event=receiver.sending.event, result="failed").inc()
            receiver.sending = None
        while not receiver.queue:
            receiver.dropping = False
            receiver.ready.clear()
            await receiver.ready.wait()
        receiver.sending = body = receiver.queue.popleft()
        result = await self._deliver(receiver, body)  # cancelled, it stays `sending` for close() to count
        receiver.sending = None
        self.counters.deliveries.labels(event=body.event, result=result).inc()

    async def _deliver(self, receiver: _Receiver, body: _Body) -> str:
        """POST `body` until it is delivered or given up: `delivered` or `failed` (logged)."""
        tried, problem = 0, ""
        try:
            async for attempt in stamina.retry_context(
                on=_retry_on,
                attempts=self._attempts,
                timeout=None,
                wait_initial=WAIT_INITIAL,
                wait_max=WAIT_MAX,
                wait_jitter=WAIT_INITIAL,
            ):
                tried = attempt.num
                if tried > 1:
                    self.counters.retries.labels(event=body.event).inc()
                with attempt:
                    await self._post(receiver.url, body)
            return "delivered"
        except (_RetryableStatus, _Refused) as exc:
            problem = str(exc)
        except TimeoutError:
            problem = f"no answer within {self._timeout.total:g} s"
        except aiohttp.InvalidURL:
            problem = "the address is not valid"
        except aiohttp.ClientError as exc:
            problem = f"unreachable ({type(exc).__name__})"
        logger.warning(
            "webhook %s (%s) to %s given up after %d attempts: %s",
            body.event,
            body.id,
            receiver.shown,
            tried,
            problem,
        )
        return "failed"

    async def _post(self, url: str, body: _Body) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crazy-gary",
            "X-Crazy-Gary-Event": body.event,
            "X-Crazy-Gary-Delivery": body.id,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(body.data, self._secret)
        async with self._client().post(url, data=body.data, headers=headers, allow_redirects=False) as answer:
            if 200 <= answer.status < 300:
                return
            if answer.status in _RETRY_STATUS:
                raise _RetryableStatus(answer.status, _retry_after(answer.headers.get("Retry-After")))
            raise _Refused(f"answered {answer.status}")

    def _client(self) -> aiohttp.ClientSession:
        # made on first use: an aiohttp session belongs to the event loop it was made in
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, skip_auto_headers=("User-Agent",))
        return self._session
