"""The Hugging Face management API through `huggingface_hub`, run off the event loop.

`huggingface_hub` is synchronous, so each call runs in a worker thread. Transient faults
(connection errors, timeouts, 5xx, 429) are retried with exponential backoff and jitter by stamina;
the library's errors are translated into ours here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import stamina

from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.errors import (
    ManagementAuthError,
    ManagementError,
    ManagementRejected,
    ManagementUnavailable,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi, InferenceEndpoint

__all__ = ["HfManagement"]

T = TypeVar("T")
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@functools.cache
def _hub() -> SimpleNamespace:
    """`huggingface_hub`, imported at the first management call rather than at start: it holds
    ~7 MB, and a gateway whose endpoints are all unmanaged (`inference_url`) never calls it."""
    import httpx2  # huggingface_hub's own HTTP stack
    import huggingface_hub
    import huggingface_hub.constants
    import huggingface_hub.errors

    return SimpleNamespace(
        HfApi=huggingface_hub.HfApi,
        constants=huggingface_hub.constants,
        set_client_factory=huggingface_hub.set_client_factory,
        HfHubHTTPError=huggingface_hub.errors.HfHubHTTPError,
        httpx2=httpx2,
    )


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, _hub().HfHubHTTPError) and exc.response is not None:
        return int(exc.response.status_code)
    return None


def _is_transient(exc: Exception) -> bool:
    """Retry what may pass by itself: the network, timeouts, 5xx and 429."""
    status = _status_of(exc)
    if status is not None:
        return status in _TRANSIENT_STATUS
    return isinstance(exc, _hub().httpx2.TransportError)


def _to_upstream(endpoint: InferenceEndpoint) -> UpstreamEndpoint:
    raw: dict[str, Any] = endpoint.raw
    status = raw.get("status") or {}
    compute = raw.get("compute") or {}
    provider = raw.get("provider") or {}
    model = raw.get("model") or {}
    return UpstreamEndpoint(
        namespace=endpoint.namespace,
        name=endpoint.name,
        state=str(status["state"]),
        url=status.get("url"),
        repository=model.get("repository"),
        vendor=provider.get("vendor"),
        region=provider.get("region"),
        instance_type=compute.get("instanceType"),
        instance_size=compute.get("instanceSize"),
        message=status.get("message"),
    )


class HfManagement:
    """`crazy_gary.core.ports.ManagementAPI` on `huggingface_hub`'s `HfApi`."""

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        attempts: int = 5,
        timeout: float = 15.0,
        retry_timeout: float = 30.0,
    ) -> None:
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @functools.cached_property
    def _api(self) -> HfApi:
        hub = _hub()
        # huggingface_hub reads its base URL from this module constant at every call; there is no
        # other way to point it at another management API (the simulator, a proxy).
        hub.constants.INFERENCE_ENDPOINTS_ENDPOINT = self._api_url
        # Its shared client waits forever by default; a hung management API must not hold a thread.
        timeout = hub.httpx2.Timeout(self._timeout)
        hub.set_client_factory(lambda: hub.httpx2.Client(follow_redirects=True, timeout=timeout))
        api: HfApi = hub.HfApi()
        return api

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _health_client(self) -> aiohttp.ClientSession:
        # Endpoint health routes (poke, probe) go over aiohttp, the gateway's own HTTP client, so a
        # gateway of unmanaged endpoints loads no second HTTP stack. Made on first use: an aiohttp
        # session belongs to the event loop it was made in.
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout, connect=5.0)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        return self._session

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        endpoints = await self._call(
            f"list the endpoints of {namespace}",
            lambda: self._api.list_inference_endpoints(namespace=namespace, token=self._token),
        )
        return [_to_upstream(endpoint) for endpoint in endpoints]

    async def get(self, namespace: str, name: str) -> UpstreamEndpoint:
        return await self._operate(
            f"read {namespace}/{name}", self._api.get_inference_endpoint, namespace, name
        )

    async def resume(self, namespace: str, name: str) -> UpstreamEndpoint:
        def resume() -> InferenceEndpoint:
            return self._api.resume_inference_endpoint(
                name, namespace=namespace, running_ok=True, token=self._token
            )

        return _to_upstream(await self._call(f"resume {namespace}/{name}", resume))

    async def pause(self, namespace: str, name: str) -> UpstreamEndpoint:
        return await self._operate(
            f"pause {namespace}/{name}", self._api.pause_inference_endpoint, namespace, name
        )

    async def scale_to_zero(self, namespace: str, name: str) -> UpstreamEndpoint:
        return await self._operate(
            f"scale {namespace}/{name} to zero", self._api.scale_to_zero_inference_endpoint, namespace, name
        )

    async def prices(self, namespace: str) -> dict[str, float]:
        """Hourly prices by instance (`aws nvidia-h200 x1`) from HF's live hardware list."""
        hardware = await self._call(
            f"list the hardware of {namespace}",
            lambda: self._api.list_inference_endpoints_hardware(namespace=namespace, token=self._token),
        )
        return {
            f"{hw.vendor} {hw.instance_type} {hw.instance_size}": float(hw.price_per_hour) for hw in hardware
        }

    async def poke(self, url: str) -> None:
        """One request to the endpoint's health route: HF starts a replica of a scaled-to-zero endpoint."""
        try:
            async with self._health_client().get(f"{url.rstrip('/')}/health") as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ManagementUnavailable(f"The endpoint at {url} could not be reached to start it.") from exc

    async def probe(self, url: str) -> bool:
        try:
            async with self._health_client().get(f"{url.rstrip('/')}/health") as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def _operate(
        self, what: str, method: Callable[..., InferenceEndpoint], namespace: str, name: str
    ) -> UpstreamEndpoint:
        endpoint = await self._call(what, lambda: method(name, namespace=namespace, token=self._token))
        return _to_upstream(endpoint)

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        hub = _hub()
        _ = self._api  # built on the loop, before a worker thread uses it
        try:
            async for attempt in stamina.retry_context(
                on=_is_transient,
                attempts=self._attempts,
                timeout=self._retry_timeout,
                wait_initial=0.1,
                wait_max=2.0,
            ):
                with attempt:
                    return await asyncio.to_thread(call)
        except (hub.HfHubHTTPError, hub.httpx2.HTTPError) as exc:
            raise self._translate(what, exc) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ManagementUnavailable(
                f"The Hugging Face management API answered nonsense to '{what}'."
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    def _translate(self, what: str, exc: Exception) -> ManagementError:
        status = _status_of(exc)
        if status in (401, 403):
            return ManagementAuthError(
                f"Hugging Face refused HUGGINGFACE_API_KEY ({status}) when asked to {what}; check the token."
            )
        if status is None:
            return ManagementUnavailable(
                f"The Hugging Face management API at {self._api_url} could not be reached."
            )
        if status in _TRANSIENT_STATUS:
            return ManagementUnavailable(
                f"The Hugging Face management API answered {status} when asked to {what}."
            )
        if status == 404:
            return ManagementRejected(f"Hugging Face found nothing to {what} (404).", status)
        return ManagementRejected(f"Hugging Face refused to {what} ({status}).", status)
