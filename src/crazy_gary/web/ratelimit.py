"""The two rate limits of the settings, counted by the `limits` library (its async API).

- `CRAZY_GARY_RATE_LIMIT` on every route but `/healthz`, `/readyz` and the page's files, per valid key
  (counted by the key's SHA-256, never the key), else per client address: a caller that sends no key
  or a wrong one is counted by its address, so changing made-up keys buys no new allowance.
- `CRAZY_GARY_MANAGEMENT_RATE_LIMIT` in addition on the wake and sleep routes, per operator key.

Both are checked by `RateLimitMiddleware` before routing, so a refused call reaches neither the route
nor Hugging Face. A refusal is a 429 `rate_limited` with `Retry-After` (whole seconds until the window
frees a slot) and is audited; every answer of a limited route carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (the Unix time, in whole seconds, the window ends) of
the tighter of its limits.

Strategy: fixed window. It keeps one counter per identity (one INCR with the Redis storage), so its
cost stays flat whatever the rate (the bench runs at `100000000/second`), and `Retry-After` is exact
since the counter is dropped when its window ends. A moving window would be exact about bursts, but
keeps one timestamp per hit and its in-memory storage prunes them through a thread per sweep; the price
of the fixed window, a burst of up to twice the rate around a window's end, is fine for a flood guard.
The windows are on the system clock (the library's own), not the app's injected clock.

With `CRAZY_GARY_REDIS_URL` the counters are in Redis (the library's Redis storage, keys under the
prefix), so every replica draws on one budget. While Redis cannot be reached each replica counts in
its own memory (from a fresh window) and serves on; it returns to the shared counters when Redis
answers again.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crazy_gary.config import Settings
from crazy_gary.store.redis import SharedRedis
from crazy_gary.web.auth import Caller, KeyRing, identify, refuse
from crazy_gary.web.errors import ApiError, error_response

__all__ = [
    "MEMORY_STORAGE",
    "Limiter",
    "RateLimitMiddleware",
    "RateLimits",
    "Verdict",
    "limiter_storage",
    "shared_storage",
]

MEMORY_STORAGE = "async+memory://"
EXEMPT_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico"})
EXEMPT_PREFIXES = ("/static/",)
_MANAGEMENT = re.compile(r"/api/endpoints/(?:wake|sleep)(?:/(?P<model_type>.+))?")
_NAMED = re.compile(r"/api/endpoints/(?:status|wake|sleep)/(?P<model_type>.+)")


def limiter_storage(uri: str = MEMORY_STORAGE) -> Storage:
    """Counters in this process's memory (or another storage of the limits library, by its URI)."""
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise TypeError(f"{uri} is not an async storage of the limits library (async+…://)")
    return storage


def shared_storage(redis: SharedRedis) -> Storage:
    """Counters every replica shares: the limits library's Redis storage on our connection pool,
    its keys under the prefix; its errors wrapped, so a lost Redis is one exception to catch."""
    from limits.aio.storage import RedisStorage

    return RedisStorage(
        "async+" + redis.url,
        implementation="redispy",
        key_prefix=redis.key("limits"),
        wrap_exceptions=True,
        # a documented option, which the stubs type as plain values
        connection_pool=redis.client.connection_pool,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Verdict:
    """One hit's outcome for one limit."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # Unix time the window ends (the limits library's system clock)

    def headers(self, now: float) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - now)))
        return headers


class Limiter:
    """One rate (such as `120/minute`) counted per identity: in Redis for every replica when it is
    configured and answers, else in this process's memory."""

    def __init__(
        self,
        name: str,
        rate: str,
        storage: Storage,
        *,
        shared: Storage | None = None,
        redis: SharedRedis | None = None,
    ) -> None:
        self.name = name
        self.item: RateLimitItem = parse(rate)
        self._local = FixedWindowRateLimiter(storage)
        self._shared = FixedWindowRateLimiter(shared) if shared is not None else None
        self._redis = redis

    async def hit(self, identity: str) -> Verdict:
        """Count one call of `identity`; the verdict says whether it was within the limit."""
        if self._shared is not None and self._redis is not None and self._redis.healthy:
            try:
                return await self._count(self._shared, identity)
            except StorageError as exc:  # Redis went away: this replica counts alone until it is back
                self._redis.failed(exc)
        return await self._count(self._local, identity)

    async def _count(self, strategy: FixedWindowRateLimiter, identity: str) -> Verdict:
        allowed = await strategy.hit(self.item, self.name, identity)
        stats = await strategy.get_window_stats(self.item, self.name, identity)
        return Verdict(allowed, self.item.amount, stats.remaining, stats.reset_time)

    def describe(self) -> str:
        return str(self.item)  # "120 per 1 minute"


@dataclass(frozen=True)
class RateLimits:
    """The general and the management limit, sharing one storage."""

    general: Limiter
    management: Limiter

    @classmethod
    def from_settings(
        cls, settings: Settings, storage: Storage, redis: SharedRedis | None = None
    ) -> RateLimits:
        shared = shared_storage(redis) if redis is not None else None
        return cls(
            general=Limiter("general", settings.rate_limit, storage, shared=shared, redis=redis),
            management=Limiter(
                "management", settings.management_rate_limit, storage, shared=shared, redis=redis
            ),
        )


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _identity(scope: Scope, caller: Caller | None) -> str:
    if caller is not None and caller.key_digest:
        return f"key:{caller.key_digest}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _refusal(scope: Scope, actor: str, limiter: Limiter, headers: dict[str, str]) -> Response:
    """The 429 answer, once the refusal is in the audit log."""
    message = (
        f"Too many requests: the limit is {limiter.describe()}; retry in {headers['Retry-After']} seconds."
    )
    error = ApiError(429, "rate_limited", message, headers)
    named = _NAMED.fullmatch(scope["path"])  # routing has not run: name the endpoint for the audit
    refuse(Request({**scope, "path_params": dict(named.groupdict()) if named else {}}), actor, error)
    return error_response(error.status, error.code, error.message, error.headers)


def _tighter(first: Verdict, second: Verdict) -> Verdict:
    """The verdict to report: a refusal, else the one with fewer calls left."""
    if not second.allowed or (first.allowed and second.remaining < first.remaining):
        return second
    return first


class RateLimitMiddleware:
    """Counts each call against its limits before routing; answers 429 past one (see the module)."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits, keyring: KeyRing) -> None:
        self.app = app
        self.limits = limits
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        caller, actor = identify(request, self.keyring)
        identity = _identity(scope, caller)
        limiter = self.limits.general
        verdict = await limiter.hit(identity)
        if verdict.allowed and self._manages(scope, caller):
            management = await self.limits.management.hit(identity)
            if _tighter(verdict, management) is management:
                limiter, verdict = self.limits.management, management
        now = time.time()  # the limits library's clock: the windows' ends are on it
        if not verdict.allowed:
            if caller is not None:  # so the access log names whose call was refused
                scope.setdefault("state", {})["caller"] = caller
            refusal = _refusal(scope, actor, limiter, verdict.headers(now))
            await refusal(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in verdict.headers(now).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _manages(scope: Scope, caller: Caller | None) -> bool:
        """A wake or sleep by a key that may do it (the others get their 401/403 from the route)."""
        return (
            caller is not None
            and caller.role == "operator"
            and scope["method"] == "POST"
            and _MANAGEMENT.fullmatch(scope["path"]) is not None
        )
