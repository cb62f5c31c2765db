"""The FastAPI app factory: every shared object is built here once and closed in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import ApiKey, Settings
from crazy_gary.core.ports import InferencePort, ManagementAPI
from crazy_gary.engine import Engine
from crazy_gary.hf.management import HfManagement
from crazy_gary.logs import log_manager_event
from crazy_gary.metrics import BackgroundErrors, Metrics
from crazy_gary.recorder import Recorder
from crazy_gary.store import SqlStore, database_url
from crazy_gary.store.redis import RedisCoordination, SharedRedis
from crazy_gary.store.redis_events import EventRelay
from crazy_gary.usage.quotas import Quotas
from crazy_gary.web.auth import KeyRing
from crazy_gary.web.edge import BodyLimitMiddleware, HardenedFastAPI, add_cors
from crazy_gary.web.errors import install_error_handlers
from crazy_gary.web.events import EventHub, document_events
from crazy_gary.web.events import router as events_router
from crazy_gary.web.gateway import document_gateway
from crazy_gary.web.gateway import router as gateway_router
from crazy_gary.web.logging_middleware import RequestLogMiddleware
from crazy_gary.web.metrics_route import router as metrics_router
from crazy_gary.web.page import page_router
from crazy_gary.web.policies import PolicyReplays
from crazy_gary.web.policies import router as policies_router
from crazy_gary.web.ratelimit import RateLimitMiddleware, RateLimits, limiter_storage
from crazy_gary.web.records import router as records_router
from crazy_gary.web.routes import router
from crazy_gary.web.status_cache import StatusCache
from crazy_gary.webhooks import Webhooks

if TYPE_CHECKING:
    from crazy_gary.tracing import Tracing

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    management: ManagementAPI | None = None,
    management_url: str | None = None,
    inference: InferencePort | None = None,
    extra_keys: Sequence[ApiKey] = (),
) -> FastAPI:
    """The crazy-gary app. `management_url` overrides `HF_ENDPOINTS_API_URL` (the embedded simulator's);
    `inference` replaces the pooled client that calls the endpoints (a fake, in tests; closed with the app)."""
    clock = clock or SystemClock()
    redis = SharedRedis(settings.redis_url, settings.redis_prefix, clock) if settings.redis_url else None
    tracing = _tracing(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            api = management
            if api is None:
                api = HfManagement(settings.token, management_url or settings.endpoints_api_url, clock=clock)
                stack.push_async_callback(api.aclose)
            await _start_services(app, settings, clock, api, inference, redis, tracing, stack)
            yield

    app = HardenedFastAPI(  # X-Content-Type-Options: nosniff on every answer
        title="crazy-gary",
        summary="Keeps LLMs on Hugging Face Inference Endpoints cheap and always answering.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=tracing.fastapi_telemetry() if tracing is not None else _NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.redis = redis
    app.state.tracing = tracing
    app.state.keyring = KeyRing([*settings.api_keys, *extra_keys])
    install_error_handlers(app)
    # The gateway's routes first: a forwarded request is matched before the REST API's routes are
    # tried (their paths do not overlap), and a route tried costs a few microseconds.
    app.include_router(gateway_router)
    app.include_router(router)
    document_gateway(app)
    app.include_router(records_router)
    app.include_router(policies_router)
    app.include_router(events_router)
    document_events(app)
    app.include_router(metrics_router)
    app.include_router(page_router())
    # The edge, innermost first: the body limit, the rate limits (before routing, so a refused call
    # reaches no route), then CORS (so its preflights cost no rate and a 429 is readable cross-origin).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    rate_limits = RateLimits.from_settings(settings, limiter_storage(), redis)
    app.add_middleware(RateLimitMiddleware, limits=rate_limits, keyring=app.state.keyring)
    add_cors(app, settings.cors_origin_list)
    # Added last, so outermost: it sees (and times) every answer, the other middleware's too.
    app.add_middleware(RequestLogMiddleware, clock=clock)
    return app


# Without traces, FastAPI's own OpenTelemetry stays off: it would look for a configured provider on
# every request (2 % of the gateway's CPU).
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _tracing(settings: Settings) -> Tracing | None:
    """The app's traces when an OTLP endpoint is set; None, and the OpenTelemetry SDK not even
    loaded (it costs memory and start-up time), when not."""
    if settings.otlp_traces_url is None:
        return None
    from crazy_gary.tracing import Tracing

    return Tracing(settings.otlp_traces_url)


async def _start_services(
    app: FastAPI,
    settings: Settings,
    clock: Clock,
    api: ManagementAPI,
    inference: InferencePort | None,
    redis: SharedRedis | None,
    tracing: Tracing | None,
    stack: contextlib.AsyncExitStack,
) -> None:
    """Build and start the engine, the traces, the event hub, Redis, the store and the metrics, in
    that order; each is closed by `stack`, in the reverse order, also when a later one fails to start."""
    coordination = RedisCoordination(redis, clock) if redis is not None else None
    background_errors = BackgroundErrors()  # every background loop's failures, counted for /metrics
    engine = Engine.from_settings(
        settings, api, clock, coordination, inference=inference, on_background_error=background_errors
    )
    app.state.engine = engine
    app.state.manager = engine.manager
    app.state.status_cache = StatusCache(engine.manager, clock)
    engine.manager.subscribe(log_manager_event)
    if tracing is not None:
        tracing.start(engine)
        stack.push_async_callback(tracing.aclose)  # after the engine closed: its last spans are sent
    relay = EventRelay(redis, coordination.replica, clock) if redis and coordination else None
    app.state.events = events = EventHub(engine.manager, engine, clock, relay=relay)
    if redis is not None:
        await redis.start(background_errors)
        stack.push_async_callback(redis.aclose)
    if relay is not None:
        await relay.start(events.deliver, background_errors)
        stack.push_async_callback(relay.aclose)
    store, recorder = await _start_records(app, settings, clock, engine, background_errors, stack)
    app.state.quotas = quotas = Quotas(
        settings.quotas,
        clock,
        redis=redis,
        replicas=(lambda: coordination.replicas_seen) if coordination is not None else (lambda: 1),
    )
    await quotas.seed(store.tokens_used)
    stack.push_async_callback(quotas.drain)
    app.state.metrics = metrics = Metrics(
        engine.manager,
        engine.clock,
        costs=recorder.billing,
        degraded=(lambda: not redis.healthy) if redis is not None else None,
        leader=lambda: engine.manager.leading,
        background_errors=background_errors,
    )
    metrics.attach(engine)
    app.state.webhooks = await _start_webhooks(settings, clock, engine, events, recorder, metrics, stack)
    stack.push_async_callback(engine.aclose)  # also after a start that failed half-way
    await engine.start()
    stack.callback(events.close)  # first of all: open streams end, so the server need not wait for them


async def _start_webhooks(
    settings: Settings,
    clock: Clock,
    engine: Engine,
    events: EventHub,
    recorder: Recorder,
    metrics: Metrics,
    stack: contextlib.AsyncExitStack,
) -> Webhooks | None:
    """The webhooks of `CRAZY_GARY_WEBHOOKS`, started before the engine so that they see its first
    states, and closed by `stack` after it; None when none is set."""
    if not settings.webhook_urls:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    webhooks = Webhooks(
        settings.webhook_urls, engine.manager, clock, secret=secret, costs=recorder.costs_between
    )
    events.on_quota_exceeded(webhooks.on_quota_exceeded)
    metrics.registry.register(webhooks.counters.deliveries)
    metrics.registry.register(webhooks.counters.retries)
    await webhooks.start(metrics.background_errors)
    stack.push_async_callback(webhooks.close)
    return webhooks


async def _start_records(
    app: FastAPI,
    settings: Settings,
    clock: Clock,
    engine: Engine,
    background_errors: BackgroundErrors,
    stack: contextlib.AsyncExitStack,
) -> tuple[SqlStore, Recorder]:
    """The store and the recorder that keeps it (fed the engine's requests), and the policy replays
    that read it; each closed by `stack`."""
    store = SqlStore(database_url(settings.database_url, settings.data_dir))
    await store.open()
    stack.push_async_callback(store.close)
    app.state.recorder = recorder = Recorder(
        store, engine.manager, clock, retention_days=settings.audit_retention_days
    )
    await recorder.start(background_errors)
    stack.push_async_callback(recorder.close)
    engine.subscribe(recorder.usage.on_request)
    engine.subscribe(recorder.arrivals.on_request)
    app.state.policy_replays = replays = PolicyReplays(
        recorder,
        engine.manager,
        clock,
        wake_timeout=settings.wake_timeout,
        fallback_wait=settings.fallback_wait,
    )
    stack.callback(replays.close)
    return store, recorder
