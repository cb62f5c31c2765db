"""The gateway engine: route a request, forward it under a lease, fall back, tell how it went.

Shared by the web gateway and HarmonyClient; knows no web framework. A request walks one way:
routing chooses an endpoint, a lease (`crazy_gary.core.lease`) counts it in flight and holds the
breaker's claim, the inference port sends it (retrying transient faults), and the outcome settles
the lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from crazy_gary.clock import Clock
from crazy_gary.config import Settings
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.lease import Lease
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import Coordination, InferenceAnswer, InferencePort, ManagementAPI
from crazy_gary.core.routing import Decision, FallbackReason, Router
from crazy_gary.core.status import EndpointStatus
from crazy_gary.core.supervisor import ErrorHook
from crazy_gary.errors import CrazyGaryError, NoCapacity, UpstreamError
from crazy_gary.hf.inference import InferenceClient
from crazy_gary.inference_requests import (
    Api,
    BadRequest,
    InferenceRequest,
    endpoint_path,
    parse_api_request,
    parse_endpoint_request,
)
from crazy_gary.usage.tokens import StreamMeter, TokenCount, tokens_of_answer

__all__ = ["BadRequest", "Engine", "Exchange", "InferenceRequest", "RequestEvent"]

CLIENT_GONE = 499  # the status of a request that ended before any answer: its caller left (nginx's)
READ_AGAIN = 5.0  # seconds to wait for a fresh reading of an endpoint that answered 503


@dataclass(frozen=True)
class RequestEvent:
    """One request finished: who served it, why, how it went (for metrics and logs); `api` is the
    OpenAI API it was a request of, or `endpoint` for one sent to an endpoint's address."""

    model: str
    served_by: str | None
    fallback_reason: str | None
    status: int
    stream: bool
    duration: float
    first_byte: float | None
    retries: int
    upstream_errors: tuple[str, ...]
    api: Api
    caller: str | None = None  # the key's name, or its role and hash
    tokens: TokenCount | None = None  # what the answer says it used
    held: float = 0.0  # seconds it waited in routing for an endpoint to start


@dataclass
class _Trace:
    """What happened to one request on its way, filled in by the engine."""

    started: float
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    first_byte: float | None = None
    tokens: TokenCount | None = None
    held: float = 0.0

    def failed(self, exc: UpstreamError) -> None:
        self.retries += exc.attempts - 1
        self.errors.append(exc.kind if exc.status is None else f"status_{exc.status}")


@dataclass
class Exchange:
    """An answer whose headers arrived; its body is read by the caller, then `aclose()` is awaited,
    which ends the request's lease (no longer in flight) and tells the engine's observers."""

    decision: Decision
    response: InferenceAnswer
    _engine: Engine
    _request: InferenceRequest
    _trace: _Trace
    _lease: Lease
    _closed: bool = False

    @property
    def served_by(self) -> str:
        return self.decision.key

    @property
    def fallback_reason(self) -> str | None:
        return self.decision.reason.value if self.decision.reason else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it comes, its usage noted (and the usage event crazy-gary asked for taken
        out); UpstreamError when the endpoint breaks off (never retried)."""
        trace = self._trace
        meter = StreamMeter(strip_usage=self._request.strip_usage)
        try:
            async for chunk in self.response.aiter_bytes():
                if trace.first_byte is None:
                    trace.first_byte = self._engine.clock.monotonic()
                passed = meter.feed(chunk)
                if passed:
                    yield passed
        except UpstreamError as exc:
            trace.errors.append(exc.kind)
            raise
        finally:
            trace.tokens = meter.tokens
        rest = meter.rest()
        if rest:
            yield rest

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body line by line (an event stream's), as `aiter_bytes` tells of it."""
        pending = b""
        async for chunk in self.aiter_bytes():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield line.decode().rstrip("\r")
        if pending:
            yield pending.decode().rstrip("\r")

    async def aread(self) -> bytes:
        """The whole body; UpstreamError when the endpoint breaks off."""
        try:
            content = await self.response.aread()
        except UpstreamError as exc:
            self._trace.errors.append(exc.kind)
            raise
        self._trace.first_byte = self._engine.clock.monotonic()
        self._trace.tokens = tokens_of_answer(content)
        return content

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self.response.aclose()
            finally:
                await self._lease.aclose()
                self._engine.finished(self._request, self._trace, self.response.status, self.decision)


class Engine:
    """Routes, forwards and falls back; one per app or HarmonyClient."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        management: ManagementAPI,
        clock: Clock,
        coordination: Coordination | None = None,
        *,
        inference: InferencePort | None = None,
        on_background_error: ErrorHook | None = None,
    ) -> Engine:
        """The manager, router and inference client as the settings describe them (`inference`: the
        pooled `InferenceClient` unless given); `on_background_error` is told of each unexpected
        failure of the manager's background loops."""
        manager = HuggingFaceEndpointManager.from_settings(
            settings, management, clock, coordination, on_background_error=on_background_error
        )
        router = Router(
            manager, clock, fallback_wait=settings.fallback_wait, max_pending=settings.max_pending
        )
        inference = inference or InferenceClient(
            attempts=settings.retry_attempts, max_connections=_pool_size(settings)
        )
        return cls(manager, router, inference, clock, token=settings.token)

    async def start(self) -> None:
        await self.manager.start()

    async def aclose(self) -> None:
        """Stop the manager's tasks and close the pooled connections."""
        await self.manager.close()
        await self.inference.aclose()

    def __init__(
        self,
        manager: HuggingFaceEndpointManager,
        router: Router,
        inference: InferencePort,
        clock: Clock,
        *,
        token: str,
    ) -> None:
        """`token` is sent to managed endpoints (Hugging Face's), never to unmanaged ones."""
        self.manager = manager
        self.router = router
        self.inference = inference
        self.clock = clock
        self._observers: list[Callable[[RequestEvent], None]] = []
        self._token = {"Authorization": f"Bearer {token}"}
        self._managed_headers = {**self._token, "Content-Type": "application/json"}
        self._plain_headers = {"Content-Type": "application/json"}

    def parse(self, raw: bytes, api: Api = "chat", caller: str | None = None) -> InferenceRequest:
        """Check the body is a request of `api` (chat unless told) with a known `model`;
        EndpointNotFound or BadRequest if not. `caller` names the key it is counted for."""
        return parse_api_request(raw, api, self.manager.resolve, caller)

    def parse_endpoint(
        self,
        model: str,
        method: str,
        raw_path: str,
        query: str,
        raw: bytes,
        headers: Mapping[str, str],
        caller: str | None = None,
    ) -> InferenceRequest:
        """A request to the address of the endpoint `model` names, at `raw_path` (as the caller encoded
        it) under it; EndpointNotFound, or BadRequest for a path that would leave the endpoint."""
        key = self.manager.resolve(model)
        return parse_endpoint_request(key, method, endpoint_path(raw_path, query), raw, headers, caller)

    def subscribe(self, observer: Callable[[RequestEvent], None]) -> None:
        """Call `observer` with a RequestEvent when each request ends (it must not block)."""
        self._observers.append(observer)

    def finished(
        self, request: InferenceRequest, trace: _Trace, status: int, decision: Decision | None = None
    ) -> None:
        """Tell the observers how a request ended."""
        now = self.clock.monotonic()
        event = RequestEvent(
            model=request.key,
            served_by=decision.key if decision else None,
            fallback_reason=decision.reason.value if decision and decision.reason else None,
            status=status,
            stream=request.stream,
            duration=now - trace.started,
            first_byte=None if trace.first_byte is None else trace.first_byte - trace.started,
            retries=trace.retries,
            upstream_errors=tuple(trace.errors),
            api=request.api,
            caller=request.caller,
            tokens=trace.tokens,
            held=trace.held,
        )
        if request.on_end is not None:
            request.on_end(trace.tokens, status)
        self.announce(event)

    def announce(self, event: RequestEvent) -> None:
        """Give `event` to every observer."""
        for observer in self._observers:
            observer(event)

    async def open(self, request: InferenceRequest) -> Exchange:
        """Route and send; on a failed endpoint try the next of the chain. The caller must `aclose()`."""
        trace = _Trace(started=self.clock.monotonic())
        try:
            return await self._open(request, trace)
        except CrazyGaryError as exc:
            self.finished(request, trace, 503 if isinstance(exc, NoCapacity) else 502)
            raise
        except BaseException:  # cancelled (the caller left, a shutdown) or a bug: it ends here too
            self.finished(request, trace, CLIENT_GONE)
            raise

    async def _open(self, request: InferenceRequest, trace: _Trace) -> Exchange:
        exclude: set[str] = set()
        gone_cold: set[str] = set()
        why: FallbackReason | None = None
        while True:
            decision = await self.router.route(request.key, exclude=frozenset(exclude), why=why)
            trace.held += decision.held
            # no await in between: the lease claims the breaker that routing saw allow this request
            async with self.manager.lease(decision.key, decision.slot) as lease:
                try:
                    response = await self._send(request, lease.endpoint, decision)
                except UpstreamError as exc:
                    trace.failed(exc)
                    if decision.key not in gone_cold and await self._gone_cold(lease, exc):
                        # asleep or starting now: woken, and the request waits or falls back as at
                        # any cold start (once per endpoint, so a flapping one cannot loop)
                        lease.gone_cold()
                        gone_cold.add(decision.key)
                        continue
                    self._settle_failure(lease, exc)
                    exclude.add(decision.key)
                    why = why or _reason_for(exc)
                    if not self._has_alternative(request.key, exclude):
                        raise
                    continue
                trace.retries += response.attempts - 1
                if response.status < 500:
                    lease.succeeded()
                else:
                    lease.failed()
                    trace.errors.append(f"status_{response.status}")
                    exclude.add(decision.key)
                    if self._has_alternative(request.key, exclude):
                        await response.aclose()
                        why = why or FallbackReason.PRIMARY_ERROR
                        continue
                return Exchange(decision, response, self, request, trace, lease.detach())

    async def _send(
        self, request: InferenceRequest, endpoint: Endpoint, decision: Decision
    ) -> InferenceAnswer:
        managed = endpoint.spec.managed
        if request.api == "endpoint":  # the caller's own headers, and HF's token instead of its key
            headers = {**request.headers, **self._token} if managed else dict(request.headers)
        else:
            headers = self._managed_headers if managed else self._plain_headers
        return await self.inference.open(
            decision.url + request.path, request.body_for(endpoint.spec.name), headers, method=request.method
        )

    async def _gone_cold(self, lease: Lease, exc: UpstreamError) -> bool:
        """Whether a 503 came from an endpoint that stopped running since it was last read (HF's own
        scale-to-zero, or a sleep through another replica): its state is read again to tell."""
        if exc.status != 503 or not lease.endpoint.spec.managed:
            return False
        return not await lease.still_running(within=READ_AGAIN)

    def _settle_failure(self, lease: Lease, exc: UpstreamError) -> None:
        """A real failure counts towards opening the circuit; a 429, or a 503 from an endpoint not
        running, does not."""
        self.manager.hurry(lease.key)
        cold = exc.status == 503 and lease.endpoint.status() is not EndpointStatus.RUNNING
        if exc.status == 429 or cold:
            lease.gone_cold()
        else:
            lease.failed()

    def _has_alternative(self, primary: str, exclude: set[str]) -> bool:
        return any(key not in exclude for key in self.manager.chain(primary))


def _reason_for(exc: UpstreamError) -> FallbackReason:
    return FallbackReason.PRIMARY_TIMEOUT if exc.kind == "timeout" else FallbackReason.PRIMARY_ERROR


_POOL = 512  # upstream connections at once, at least
_POOL_CEILING = 4096  # and at most: the rest of the process's descriptors are for callers and files


def _pool_size(settings: Settings) -> int:
    """Upstream connections at once: enough for every endpoint's `max_concurrency` together (up to
    a ceiling), so a release of held requests up to those limits goes out at once rather than
    waiting for the pool."""
    limits = sum(spec.max_concurrency or 0 for spec in settings.endpoints.values())
    return min(max(_POOL, limits), _POOL_CEILING)
