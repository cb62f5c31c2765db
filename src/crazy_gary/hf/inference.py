"""OpenAI-style calls to endpoints over one shared, pooled httpx2 client, retried by stamina.

`open()` returns a response whose headers have arrived and whose body has not been read: the caller
passes the body through as bytes. Retries happen only before that point, so never after a byte has
gone to the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import httpx2
import stamina

from crazy_gary.errors import UpstreamError

__all__ = ["InferenceClient"]

RETRY_STATUS = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 10.0


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.retry_after = retry_after


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
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
    return isinstance(exc, httpx2.TransportError)


class InferenceClient:
    """One pooled async client for every endpoint; the hot path builds nothing it can reuse."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        max_connections: int = 512,
    ) -> None:
        self.attempts = attempts
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open(self, url: str, body: bytes, headers: Mapping[str, str]) -> httpx2.Response:
        """POST `body` to `url`; the response with its headers read, or UpstreamError after the retries."""
        request = self._http.build_request("POST", url, content=body, headers=headers)
        try:
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=self.attempts,
                timeout=None,
                wait_initial=0.1,
                wait_max=2.0,
                wait_jitter=0.1,
            ):
                with attempt:
                    return await self._send(request)
        except _RetryableStatus as exc:
            raise UpstreamError(f"{url} answered {exc.status}.", kind="status", status=exc.status) from None
        except httpx2.TimeoutException:
            raise UpstreamError(f"{url} did not answer in time.", kind="timeout") from None
        except httpx2.TransportError:
            raise UpstreamError(f"{url} could not be reached.", kind="connect") from None
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._http.send(request, stream=True)
        if response.status_code in RETRY_STATUS:
            retry_after = _retry_after(response)
            await response.aclose()
            raise _RetryableStatus(response.status_code, retry_after)
        return response
