"""The Hugging Face management API through `huggingface_hub`, run off the event loop.

`huggingface_hub` is synchronous, so each call runs in a worker thread. Transient faults
(connection errors, timeouts, 5xx, 429) are retried with exponential backoff and jitter by stamina;
a 429 that says when to come back (`Retry-After`, or a `RateLimit` header whose `r` is 0) closes
the gate to every call until then. Everything the API answers is read here, inside the one
boundary where the library's errors and malformed answers become ours.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import stamina

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.core.ports import CHAT_PATH, UpstreamEndpoint
from crazy_gary.errors import ManagementError, ManagementUnavailable
from crazy_gary.hf.answers import MalformedAnswer, retry_after, to_upstream, translate

if TYPE_CHECKING:
    from huggingface_hub import HfApi, InferenceEndpoint

__all__ = ["HfManagement"]

T = TypeVar("T")
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_GATE = 300.0  # a Retry-After beyond this is taken as this: the pollers must not fall silent for hours


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
        clock: Clock | None = None,
    ) -> None:
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None
        self._closed_until = 0.0  # monotonic time before which a 429 asked us not to call again

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
        # Endpoint routes (health, the request that starts a replica) go over aiohttp, the gateway's
        # own HTTP client, so a gateway of unmanaged endpoints loads no second HTTP stack. Made on
        # first use: an aiohttp session belongs to the event loop it was made in.
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout, connect=5.0)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        return self._session

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        def listed() -> list[UpstreamEndpoint]:
            endpoints = self._api.list_inference_endpoints(namespace=namespace, token=self._token)
            return [to_upstream(endpoint.raw, namespace) for endpoint in endpoints]

        return await self._call(f"list the endpoints of {namespace}", namespace, listed)

    async def get(self, namespace: str, name: str) -> UpstreamEndpoint:
        api, token = self._api, self._token
        return await self._operate(
            f"read {namespace}/{name}",
            namespace,
            lambda: api.get_inference_endpoint(name, namespace=namespace, token=token),
        )

    async def resume(self, namespace: str, name: str) -> UpstreamEndpoint:
        api, token = self._api, self._token
        return await self._operate(
            f"resume {namespace}/{name}",
            namespace,
            lambda: api.resume_inference_endpoint(name, namespace=namespace, running_ok=True, token=token),
        )

    async def pause(self, namespace: str, name: str) -> UpstreamEndpoint:
        api, token = self._api, self._token
        return await self._operate(
            f"pause {namespace}/{name}",
            namespace,
            lambda: api.pause_inference_endpoint(name, namespace=namespace, token=token),
        )

    async def scale_to_zero(self, namespace: str, name: str) -> UpstreamEndpoint:
        api, token = self._api, self._token
        return await self._operate(
            f"scale {namespace}/{name} to zero",
            namespace,
            lambda: api.scale_to_zero_inference_endpoint(name, namespace=namespace, token=token),
        )

    async def update_scaling(
        self,
        namespace: str,
        name: str,
        *,
        min_replica: int,
        max_replica: int,
        scale_to_zero_timeout: int | None,
    ) -> UpstreamEndpoint:
        api, token = self._api, self._token
        return await self._operate(
            f"set the scaling of {namespace}/{name}",
            namespace,
            lambda: api.update_inference_endpoint(
                name,
                namespace=namespace,
                min_replica=min_replica,
                max_replica=max_replica,
                scale_to_zero_timeout=scale_to_zero_timeout,
                token=token,
            ),
        )

    async def prices(self, namespace: str) -> dict[str, float]:
        """Hourly prices by instance (`aws nvidia-h200 x1`) from HF's live hardware list."""

        def prices() -> dict[str, float]:
            hardware = self._api.list_inference_endpoints_hardware(namespace=namespace, token=self._token)
            return {
                f"{hw.vendor} {hw.instance_type} {hw.instance_size}": float(hw.price_per_hour)
                for hw in hardware
            }

        return await self._call(f"list the hardware of {namespace}", namespace, prices)

    async def poke(self, url: str, route: str = "/health") -> None:
        """One GET of the endpoint's health route, which HF may count as traffic that starts it."""
        await self._start_request(url, "GET", route)

    async def send_inference(self, url: str, model: str) -> None:
        """A one-token chat request: HF documents that a request starts a scaled-to-zero endpoint."""
        body = {"model": model, "messages": [{"role": "user", "content": "."}], "max_tokens": 1}
        await self._start_request(url, "POST", CHAT_PATH, body)

    async def _start_request(self, url: str, method: str, route: str, body: object = None) -> None:
        """A request meant to start an endpoint; its answer does not matter, only that it arrived."""
        # On a connection of its own: a kept-alive one may be closed by the server at the very moment
        # it is reused (the wake's inference request follows its health request by about the usual
        # keep-alive timeout), and then the request would never arrive.
        headers = {"Connection": "close"}
        for attempt in (1, 2):
            try:
                async with self._health_client().request(
                    method, _join(url, route), json=body, headers=headers
                ) as response:
                    await response.read()
                    return
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == 2:
                    raise ManagementUnavailable(
                        f"The endpoint at {url} could not be reached to start it."
                    ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ManagementUnavailable(
                    f"The endpoint at {url} could not be reached to start it."
                ) from exc

    async def probe(self, url: str, route: str = "/health") -> bool:
        try:
            async with self._health_client().get(_join(url, route)) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def _operate(
        self, what: str, namespace: str, request: Callable[[], InferenceEndpoint]
    ) -> UpstreamEndpoint:
        return await self._call(what, namespace, lambda: to_upstream(request().raw, namespace))

    async def _call(self, what: str, namespace: str, call: Callable[[], T]) -> T:
        """Run `call` (a request and the reading of its answer) in a thread, retried, translated."""
        hub = _hub()
        _ = self._api  # built on the loop, before a worker thread uses it
        try:
            async for attempt in stamina.retry_context(
                on=self._retry_wait,
                attempts=self._attempts,
                timeout=self._retry_timeout,
                wait_initial=0.1,
                wait_max=2.0,
            ):
                with attempt:
                    await self._wait_for_gate()
                    return await asyncio.to_thread(call)
        except ManagementError:
            raise
        except (hub.HfHubHTTPError, hub.httpx2.HTTPError) as exc:
            raise translate(what, namespace, _status_of(exc), self._api_url) from exc
        except (MalformedAnswer, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = _reason(exc)
            raise ManagementUnavailable(
                f"The Hugging Face management API answered nonsense to '{what}': {reason}."
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    def _retry_wait(self, exc: Exception) -> bool | float:
        """Whether to try again, and after how long: a 429's own word, else stamina's backoff."""
        status = _status_of(exc)
        if status is None:
            return isinstance(exc, _hub().httpx2.TransportError)
        if status not in _TRANSIENT_STATUS:
            return False
        if status == 429 and isinstance(exc, _hub().HfHubHTTPError) and exc.response is not None:
            wait = retry_after(exc.response.headers)
            if wait is not None:
                wait = min(wait, _MAX_GATE)
                self._closed_until = max(self._closed_until, self._clock.monotonic() + wait)
                # The gate holds every call, this retry included; stamina only waits its usual short step.
                return 0.05
        return True

    async def _wait_for_gate(self) -> None:
        wait = self._closed_until - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):  # huggingface_hub reads its own required fields
        return f"the field {exc.args[0]!r} is missing" if exc.args else "a field is missing"
    return str(exc) if isinstance(exc, MalformedAnswer) else f"{type(exc).__name__}: {exc}"


def _join(url: str, route: str) -> str:
    return f"{url.rstrip('/')}/{route.lstrip('/')}"
