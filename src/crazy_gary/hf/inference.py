"""OpenAI-style calls to endpoints over one shared, pooled aiohttp session, retried by stamina.

aiohttp rather than httpx2 (which the rest of the project and huggingface_hub use): on this 2-core
machine httpx2's async client alone tops out near 1,450 requests a second at 32 connections (its pool
checks every idle connection through anyio on each request), aiohttp passes 10,000, and the gateway
must forward more than 1,300 a second with its own work on top (see bench/).

`open()` returns an answer whose headers have arrived and whose body has not been read: the caller
passes the body through as bytes. Retries happen only before that point, so never after a byte has
gone to the caller. Each answer and each UpstreamError says how many attempts it took; those are the
retries counted in /metrics, so stamina's own retry hooks are turned off (`quiet_retry_hooks`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping

import aiohttp
import stamina
from yarl import URL

from crazy_gary.errors import UpstreamError

__all__ = ["InferenceClient", "UpstreamResponse", "quiet_retry_hooks"]

RETRY_STATUS = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 10.0


def quiet_retry_hooks() -> None:
    """Turn stamina's global retry hooks off (process-wide): by default they log a warning per retry
    as `<context block>` and count into a Prometheus registry nobody exports; our retries are counted
    from the attempts each answer carries."""
    stamina.instrumentation.set_on_retry_hooks([])


class UpstreamResponse:
    """An endpoint's answer: status and headers read, body still to come (an `InferenceAnswer`)."""

    __slots__ = ("_response", "_url", "attempts", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, url: str, attempts: int) -> None:
        self._response = response
        self._url = url
        self.attempts = attempts
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._broke_off(exc) from exc

    async def aiter_lines(self) -> AsyncIterator[str]:
        try:
            async for line in self._response.content:
                yield line.decode().rstrip("\r\n")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._broke_off(exc) from exc

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._broke_off(exc) from exc

    def _broke_off(self, exc: Exception) -> UpstreamError:
        kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
        return UpstreamError(f"{self._url} broke off its answer.", kind=kind, attempts=self.attempts)

    async def aclose(self) -> None:
        self._response.release()


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


def _backoff(exc: Exception) -> bool | float | dt.timedelta:
    """stamina's hook: retry transport faults and 429/502/503/504, honouring Retry-After."""
    if isinstance(exc, _RetryableStatus):
        return exc.retry_after if exc.retry_after is not None else True
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)


class InferenceClient:
    """One pooled session for every endpoint; the hot path builds nothing it can reuse."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        max_connections: int = 512,
    ) -> None:
        self.attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # made on first use: an aiohttp session belongs to the event loop it was made in
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                # no Accept-Encoding: answers are passed on as bytes (auto_decompress is off) with
                # their content type only, so they must come uncompressed
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def open(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> UpstreamResponse:
        """Send `body` to `url` (POST unless told); the answer with its headers read, or UpstreamError after the retries
        (both say how many attempts were made)."""
        tried = 1
        first: Exception | None = None
        try:
            # The first attempt goes without the retry machinery (building it costs more than the
            # rest of the call); when it fails in a way worth retrying, stamina's first attempt
            # raises that failure again, so the waits and the count are stamina's as ever.
            try:
                return await self._send(method, url, body, headers, 1)
            except (_RetryableStatus, aiohttp.ClientError, TimeoutError) as exc:
                first = exc
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=self.attempts,
                timeout=None,
                wait_initial=0.1,
                wait_max=2.0,
                wait_jitter=0.1,
            ):
                tried = attempt.num
                with attempt:
                    if tried == 1 and first is not None:
                        raise first
                    return await self._send(method, url, body, headers, tried)
        except _RetryableStatus as exc:
            message = f"{url} answered {exc.status}."
            raise UpstreamError(message, kind="status", status=exc.status, attempts=tried) from None
        except TimeoutError:
            raise UpstreamError(f"{url} did not answer in time.", kind="timeout", attempts=tried) from None
        except aiohttp.ClientError:
            raise UpstreamError(f"{url} could not be reached.", kind="connect", attempts=tried) from None
        finally:
            first = None  # its traceback holds this frame (the body, the headers): no cycle left behind
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _send(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], attempt: int
    ) -> UpstreamResponse:
        # encoded=True: the path goes as the caller encoded it (checked by crazy_gary.inference_requests),
        # never re-quoted nor its dot segments resolved by yarl
        response = await self._client().request(
            method, URL(url, encoded=True), data=body or None, headers=headers, allow_redirects=False
        )
        if response.status in RETRY_STATUS:
            retry_after = _retry_after(response.headers)
            response.release()
            raise _RetryableStatus(response.status, retry_after)
        return UpstreamResponse(response, url, attempt)
