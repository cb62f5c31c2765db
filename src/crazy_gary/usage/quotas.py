"""Quotas: tokens a key may use per UTC day and month, held before anything goes upstream.

A request of a key with a quota is let through only when its reservation fits every window: its
`max_tokens` (or `max_completion_tokens`, `max_output_tokens`; else `CRAZY_GARY_QUOTA_RESERVE`)
plus its body's length / 4. When the answer ends, the reservation is settled to the tokens it says
it used; a failed request releases it; an answer that says nothing (a stream cut midway) keeps it.
Replicas on one Redis share the counts (`RedisBook`); while Redis is away each replica counts its
own share of every limit (`LocalBook.share`, the replicas last seen) and `/readyz` says degraded.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crazy_gary.clock import Clock
from crazy_gary.errors import CrazyGaryError
from crazy_gary.usage.books import Book, LocalBook, RedisBook, Window
from crazy_gary.usage.tokens import TokenCount

if TYPE_CHECKING:
    from crazy_gary.store.redis import SharedRedis

__all__ = ["QuotaExceeded", "QuotaLimit", "Quotas", "Reservation", "reservation_size"]

logger = logging.getLogger("crazy_gary.quotas")
# Seconds a reservation holds unless settled (a replica that died never settles): longer than a
# request can take, a hold for a cold start included, so that a live one never lapses.
LAPSES_AFTER = 3600.0
_MAX_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class QuotaLimit:
    """Tokens (read and written) a key may use per UTC calendar day and month; None: no limit."""

    tokens_per_day: int | None = None
    tokens_per_month: int | None = None


class QuotaExceeded(CrazyGaryError):
    """A key's quota cannot cover the request (429 with Retry-After: the window's end)."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, key: str, window: str, retry_after: int) -> None:
        super().__init__(message)
        self.key = key
        self.window = window
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one request of `key` in `windows`, until settled."""

    key: str
    id: str
    amount: int
    windows: tuple[Window, ...]


def reservation_size(body: Mapping[str, Any] | None, raw_length: int, default: int) -> int:
    """What a request may use: the most it may write, else `default`, plus what it reads (about a
    token per four bytes of its body)."""
    most = default
    for name in _MAX_FIELDS:
        value = (body or {}).get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            most = value
            break
    return most + raw_length // 4


def windows_at(limit: QuotaLimit, now: float) -> tuple[Window, ...]:
    """The windows of `limit` that `now` (Unix seconds) falls in."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    windows = []
    if limit.tokens_per_day is not None:
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (day + dt.timedelta(days=1)).timestamp()
        windows.append(Window("tokens_per_day", day.strftime("%Y-%m-%d"), limit.tokens_per_day, end))
    if limit.tokens_per_month is not None:
        days = calendar.monthrange(moment.year, moment.month)[1]
        month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (month + dt.timedelta(days=days)).timestamp()
        windows.append(Window("tokens_per_month", month.strftime("%Y-%m"), limit.tokens_per_month, end))
    return tuple(windows)


class Quotas:
    """The configured quotas, counted in this process or in Redis."""

    def __init__(
        self,
        limits: Mapping[str, QuotaLimit],
        clock: Clock,
        *,
        redis: SharedRedis | None = None,
        replicas: Callable[[], int] = lambda: 1,
    ) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._local = LocalBook()
        self._redis = redis
        self._shared = RedisBook(redis) if redis is not None and limits else None
        self._replicas = replicas
        self._settling: set[asyncio.Task[None]] = set()
        self._used_since: Callable[[str, float], Awaitable[int]] | None = None
        self._counting_in: Book | None = None  # the book of the last call: a change resyncs

    def applies(self, key: str | None) -> bool:
        return key is not None and key in self.limits

    def _book(self) -> Book:
        if self._shared is not None and self._redis is not None and self._redis.healthy:
            return self._shared
        self._local.share = max(1, self._replicas()) if self._shared is not None else 1
        return self._local

    async def _call(self, use: Callable[[Book], Any]) -> Any:
        """`use` the shared book, or this replica's own when Redis fails (marked unhealthy)."""
        book = await self._current()
        if book is self._local:
            return await use(book)
        try:
            return await use(book)
        except _redis_errors() as exc:
            assert self._redis is not None
            self._redis.failed(exc)
            return await use(await self._current())

    async def _current(self) -> Book:
        """The book to count in now; when that changed (Redis went away, or came back), it first
        starts from what the store says was used: this replica's share of what is left, or in Redis
        at least what every replica counted meanwhile."""
        book = self._book()
        if book is not self._counting_in and self._counting_in is not None and self._used_since is not None:
            try:
                await self._resync(book)
            except _redis_errors() as exc:
                assert self._redis is not None
                self._redis.failed(exc)
                book = self._book()
        self._counting_in = book
        return book

    async def _resync(self, book: Book) -> None:
        assert self._used_since is not None
        now = self._clock.now()
        for key, limit in self.limits.items():
            for window in windows_at(limit, now):
                used = int(await self._used_since(key, _window_start(window)))
                if book is self._local:
                    self._local.reset(key, window, used // self._local.share)
                elif self._shared is not None:
                    await self._shared.seed(key, window, used)

    async def reserve(self, key: str, amount: int) -> Reservation:
        """Hold `amount` tokens of `key`'s quota; QuotaExceeded when a window cannot cover it."""
        now = self._clock.now()
        windows = windows_at(self.limits[key], now)
        reservation = Reservation(key, uuid.uuid4().hex, amount, windows)
        lapses = now + LAPSES_AFTER
        refusal = await self._call(
            lambda book: book.reserve(key, reservation.id, amount, windows, now, lapses)
        )
        if refusal is None:
            return reservation
        window = refusal.window
        left = max(0, window.limit - refusal.taken)
        message = (
            f"The quota of '{key}' ({window.name.replace('_', ' ')}: {window.limit}) has {left} tokens left;"
            f" this request may use {amount}."
        )
        wait = max(1, int(window.ends_at - now + 0.999))
        raise QuotaExceeded(message, key=key, window=window.name, retry_after=wait)

    def settle_soon(self, reservation: Reservation, tokens: TokenCount | None, status: int) -> None:
        """Settle in the background (called when a request ends, which must not wait)."""
        if tokens is not None:
            used = tokens.total
        elif status >= 400:
            used = 0  # failed: released
        else:
            used = reservation.amount  # an answer that said nothing: what it could have used
        task = asyncio.ensure_future(self.settle(reservation, used))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a quota reservation could not be settled", exc_info=task.exception())

    async def settle(self, reservation: Reservation, used: int) -> None:
        key, windows = reservation.key, reservation.windows
        await self._call(lambda book: book.settle(key, reservation.id, windows, used))

    async def drain(self) -> None:
        """Wait for the settlements under way (at shutdown, and in tests)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    async def report(self, keys: list[str]) -> dict[str, dict[str, dict[str, float]]]:
        """Each key's windows: limit, used (reservations included), remaining, resets_at."""
        now = self._clock.now()
        answer: dict[str, dict[str, dict[str, float]]] = {}
        for key in keys:
            windows = windows_at(self.limits[key], now)
            taken = await self._taken(key, windows, now)
            answer[key] = {
                window.name: {
                    "limit": window.limit,
                    "used": taken[window.name],
                    "remaining": max(0, window.limit - taken[window.name]),
                    "resets_at": int(window.ends_at),
                }
                for window in windows
            }
        return answer

    async def _taken(self, key: str, windows: tuple[Window, ...], now: float) -> dict[str, int]:
        taken: dict[str, int] = await self._call(lambda book: book.used(key, windows, now))
        return taken

    async def seed(self, used_since: Callable[[str, float], Awaitable[int]]) -> None:
        """Start each window at what the store says was used in it (`used_since(key, start)`), so that
        a restart forgets nothing (in Redis: raised to it where it holds less)."""
        self._used_since = used_since
        now = self._clock.now()
        for key, limit in self.limits.items():
            for window in windows_at(limit, now):
                start = _window_start(window)
                used = int(await used_since(key, start))
                self._local.seed(key, window, used)
                if self._shared is not None and self._redis is not None and self._redis.healthy:
                    try:
                        await self._shared.seed(key, window, used)
                    except _redis_errors() as exc:
                        self._redis.failed(exc)
        self._counting_in = self._book()


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a failed Redis call raises (redis-py is loaded only where Redis is configured)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def _window_start(window: Window) -> float:
    if window.name == "tokens_per_day":
        return window.ends_at - 86_400
    year, month = (int(part) for part in window.id.split("-"))
    return dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()
