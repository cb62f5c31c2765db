"""`crazy-gary doctor`: what `serve` would find, checked one thing at a time, as data.

`diagnose(settings)` talks to the Hugging Face management API directly (no crazy-gary server), and
to Redis and the store when they are configured; it never starts, wakes or changes an endpoint (a
health route is only asked of an endpoint that runs). Each finding is a :class:`Check`: `ok`,
`warning` (serving works, but something costs money or surprises) or `error` (something cannot serve).
No check's text holds the token, a key or a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import SIMULATOR_TOKEN, Settings, load_simulator_config
from crazy_gary.core.costs import price_for
from crazy_gary.core.ports import ManagementAPI, UpstreamEndpoint
from crazy_gary.core.scaling import wanted_idle_timer
from crazy_gary.endpoint_file import CONFIG_VARIABLE, EndpointSpec
from crazy_gary.errors import ManagementAuthError, ManagementError, ManagementUnavailable
from crazy_gary.hf.management import HfManagement
from crazy_gary.simulator import SimulatorServer

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["Check", "Level", "diagnose", "render", "report", "run_diagnosis"]

Level = Literal["ok", "warning", "error"]
MARKS: dict[Level, str] = {"ok": "✓", "warning": "!", "error": "✗"}
_BROKEN_STATES = frozenset({"failed", "updateFailed"})
_CONNECT_TIMEOUT = 5.0  # seconds Redis or PostgreSQL may take to answer before it counts as unreachable


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, what was found and, unless ok, what to do."""

    check: str
    level: Level
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        """Whether this finding lets `serve` serve (a warning does)."""
        return self.level != "error"

    def to_dict(self) -> dict[str, Any]:
        return dict(check=self.check, ok=self.ok, level=self.level, detail=self.detail, fix=self.fix)


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, "warning", detail, fix)


def _error(name: str, detail: str, fix: str) -> Check:
    return Check(name, "error", detail, fix)


def render(check: Check) -> str:
    """One line: the mark, what was checked and found, and what to do unless it is fine."""
    line = f"{MARKS[check.level]} {check.check}: {check.detail}"
    return f"{line} → {check.fix}" if check.fix and check.level != "ok" else line


def report(checks: Iterable[Check]) -> dict[str, Any]:
    """The `--json` object: `ok` when no check is an error, and every check."""
    found = list(checks)
    return {"ok": all(check.ok for check in found), "checks": [check.to_dict() for check in found]}


def run_diagnosis(settings: Settings) -> list[Check]:
    """`diagnose` on an event loop of its own, for the command line."""
    return asyncio.run(diagnose(settings))


async def diagnose(
    settings: Settings, *, clock: Clock | None = None, management: ManagementAPI | None = None
) -> list[Check]:
    """Every check, in order: Hugging Face (the embedded simulator when simulating), Redis, the store."""
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        api_url = settings.endpoints_api_url
        if settings.simulating and management is None:
            config = load_simulator_config(token=SIMULATOR_TOKEN)
            api_url = (await stack.enter_async_context(SimulatorServer(config, clock))).management_url
            first = _ok(
                "hugging face",
                f"simulating: the embedded simulator at {api_url} stands in for Hugging Face (no "
                "HUGGINGFACE_API_KEY, or CRAZY_GARY_SIMULATE on); set HUGGINGFACE_API_KEY to check your account",
            )
        else:
            first = _ok("hugging face", f"management API {api_url}, token from HUGGINGFACE_API_KEY")
        if management is None:
            owned = HfManagement(
                settings.token, api_url, attempts=3, timeout=10.0, retry_timeout=15.0, clock=clock
            )
            stack.push_async_callback(owned.aclose)
            management = owned
        checks = [first, *await _hugging_face_checks(settings, management)]
    if settings.redis_url:
        checks.append(await _redis_check(settings.redis_url))
    checks.append(await _store_check(settings))
    return checks


async def _hugging_face_checks(settings: Settings, management: ManagementAPI) -> list[Check]:
    specs = list(settings.endpoints.values())
    managed = [spec for spec in specs if spec.managed]
    checks: list[Check] = []
    listings: dict[str, dict[str, UpstreamEndpoint]] = {}
    for namespace in dict.fromkeys(spec.namespace for spec in managed if spec.namespace):
        check, listing = await _namespace_check(management, namespace)
        checks.append(check)
        if listing is not None:
            listings[namespace] = listing
    prices = _LivePrices(management)
    for spec in managed:
        listing = listings.get(spec.namespace or "")
        if listing is not None:  # an unusable namespace was reported once, above
            checks.extend(await _endpoint_checks(settings, spec, listing, management, prices))
    for spec in specs:
        if not spec.managed:
            checks.append(await _unmanaged_check(spec, management))
    return checks


async def _namespace_check(
    management: ManagementAPI, namespace: str
) -> tuple[Check, dict[str, UpstreamEndpoint] | None]:
    """Whether the token may list the namespace; its endpoints by name when it may."""
    name = f"namespace {namespace}"
    try:
        endpoints = await management.list(namespace)
    except ManagementAuthError as exc:
        fix = (
            f"use a token that may manage the Inference Endpoints of '{namespace}' "
            f"(https://huggingface.co/settings/tokens) and set up billing for '{namespace}'"
        )
        return _error(name, exc.message, fix), None
    except ManagementUnavailable as exc:
        fix = "check HF_ENDPOINTS_API_URL and the network (a proxy? HF_HUB_OFFLINE=1 blocks every call)"
        return _error(name, exc.message, fix), None
    except ManagementError as exc:
        return _error(name, exc.message, f"check the namespace '{namespace}' of the endpoint addresses"), None
    count = f"{len(endpoints)} endpoint{'' if len(endpoints) == 1 else 's'}"
    return _ok(name, f"the token may list its endpoints ({count})"), {e.name: e for e in endpoints}


async def _endpoint_checks(
    settings: Settings,
    spec: EndpointSpec,
    listing: dict[str, UpstreamEndpoint],
    management: ManagementAPI,
    prices: _LivePrices,
) -> list[Check]:
    upstream = listing.get(spec.name or "")
    if upstream is None:
        others = ", ".join(sorted(listing)[:5]) or "none"
        detail = f"no endpoint {spec.name} in {spec.namespace} (it has: {others})"
        return [_error(f"{spec.key} endpoint", detail, f"check {_where_configured(settings, spec)}")]
    auto_sleep = spec.auto_sleep if spec.auto_sleep is not None else settings.auto_sleep
    wanted = wanted_idle_timer(settings.hf_scale_to_zero, auto_sleep)
    checks = [
        _state_check(spec.key, upstream),
        _replica_check(spec.key, upstream, auto_sleep, wanted, settings.hf_scale_to_zero),
        _idle_timer_check(spec.key, upstream, auto_sleep, wanted, settings.hf_scale_to_zero),
    ]
    if upstream.state == "running":
        checks.append(await _health_check(spec.key, upstream, management))
    checks.append(await _price_check(spec, upstream, prices))
    return checks


def _where_configured(settings: Settings, spec: EndpointSpec) -> str:
    variable = f"HF_BASE_URL_{spec.key.upper()}"
    if spec.key in ("120b", "20b") and getattr(settings, f"hf_base_url_{spec.key}", None):
        return variable
    return f"endpoints.{spec.key}.url in {CONFIG_VARIABLE}"


def _state_check(key: str, upstream: UpstreamEndpoint) -> Check:
    name, state = f"{key} endpoint", upstream.state
    found = f"{upstream.namespace}/{upstream.name} is {state}"
    said = f": {upstream.message}" if upstream.message else ""
    what = ", ".join(part for part in (upstream.repository, upstream.instance) if part)
    if state in _BROKEN_STATES:
        ui = f"https://endpoints.huggingface.co/{upstream.namespace}/endpoints/{upstream.name}"
        return _error(name, f"{found}{said}", f"read its logs at {ui}, fix it there and restart it")
    if state == "pending":
        return _warn(
            name, f"{found}{said}", "HF waits for a free machine: wait, or pick another instance or region"
        )
    meaning = {
        "running": "answering",
        "scaledToZero": "asleep; crazy-gary wakes it when work arrives",
        "paused": "paused; crazy-gary resumes it when work arrives",
        "initializing": "starting",
        "updating": "applying a change",
    }.get(state)
    if meaning is None:
        return _warn(name, f"{found}{said}, a state crazy-gary does not know", "look at it in HF's UI")
    return _ok(name, f"{found} ({meaning}{'; ' + what if what else ''})")


def _replica_check(
    key: str, upstream: UpstreamEndpoint, auto_sleep: float, wanted: int | None, setting: str
) -> Check:
    name = f"{key} replicas"
    low, high = upstream.min_replica, upstream.max_replica
    if low is None or high is None:
        return _warn(name, "HF did not say its replica counts", "look at its scaling in HF's UI")
    counts = f"minReplica {low}, maxReplica {high}"
    if low < 1:
        return _ok(name, counts)
    if auto_sleep <= 0:
        detail = f"{counts}: HF never scales it to zero and ENDPOINT_AUTO_SLEEP=0: it is billed while idle"
        return _warn(name, detail, "set ENDPOINT_AUTO_SLEEP, or minReplica 0 in HF's UI")
    detail = (
        f"{counts}: HF never scales it to zero and bills it while idle; crazy-gary's auto-sleep still can"
    )
    fix = "set minReplica to 0 in HF's UI, or CRAZY_GARY_HF_SCALE_TO_ZERO=auto"
    if wanted is not None:
        fix = f"serve sets minReplica to 0 at start (CRAZY_GARY_HF_SCALE_TO_ZERO={setting})"
    return _warn(name, detail, fix)


def _idle_timer_check(
    key: str, upstream: UpstreamEndpoint, auto_sleep: float, wanted: int | None, setting: str
) -> Check:
    """HF's own idle timer against crazy-gary's auto-sleep, now and once `serve` has set it."""
    name, current = f"{key} idle timer", upstream.scale_to_zero_timeout
    acting = None if upstream.min_replica else current  # HF's timer does nothing while minReplica >= 1
    after = wanted if wanted is not None else acting
    ours = f"crazy-gary's auto-sleep of {_minutes(auto_sleep)}" if auto_sleep > 0 else None
    variable = f"CRAZY_GARY_HF_SCALE_TO_ZERO={setting}"
    longer = f"set CRAZY_GARY_HF_SCALE_TO_ZERO=auto, or more than {_minutes(auto_sleep)}"
    too_short = after is not None and after * 60 < auto_sleep
    if ours and acting is not None and acting * 60 < auto_sleep:
        fix = longer if too_short else f"serve sets it to {wanted} min at start ({variable})"
        return _warn(name, f"HF will scale it to zero after {acting} min, before {ours}", fix)
    if ours and too_short:
        return _warn(name, f"serve sets HF's idle timer to {after} min ({variable}), before {ours}", longer)
    if after is None:
        timer = "HF's idle timer is off" if current is None else "minReplica >= 1"
        if ours:
            detail = f"{timer} and {variable}: nothing puts it to sleep if crazy-gary stops"
            return _warn(name, detail, "set CRAZY_GARY_HF_SCALE_TO_ZERO=auto, or HF's own timer")
        detail = f"{timer} and auto-sleep is off (ENDPOINT_AUTO_SLEEP=0): nothing puts it to sleep"
        return _warn(name, detail, "set ENDPOINT_AUTO_SLEEP, or HF's own timer")
    shown = f"HF's idle timer is {f'{current} min' if current is not None else 'off'}"
    against = f"{ours}" if ours else "crazy-gary's auto-sleep is off"
    change = f"; serve sets it to {wanted} min at start ({variable})" if after != acting else ""
    return _ok(name, f"{shown}, {against}{change}")


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60, 1):g} min"


async def _health_check(key: str, upstream: UpstreamEndpoint, management: ManagementAPI) -> Check:
    name, route = f"{key} health", upstream.health_route
    if upstream.url is None:
        return _warn(name, "running, but HF gives no address for it", "look at it in HF's UI")
    if await management.probe(upstream.url, route):
        return _ok(name, f"{route} answers 200")
    detail = f"running but its health route {route} does not answer 200: the model may still be loading"
    return _warn(name, detail, "run doctor again in a few minutes; if it stays so, read its logs in HF's UI")


class _LivePrices:
    """HF's live hardware list, read once per namespace; None when it could not be read."""

    def __init__(self, management: ManagementAPI) -> None:
        self._management = management
        self._by_namespace: dict[str, dict[str, float] | None] = {}

    async def of(self, namespace: str) -> dict[str, float] | None:
        if namespace not in self._by_namespace:
            try:
                self._by_namespace[namespace] = await self._management.prices(namespace)
            except ManagementError:
                self._by_namespace[namespace] = None
        return self._by_namespace[namespace]


async def _price_check(spec: EndpointSpec, upstream: UpstreamEndpoint, prices: _LivePrices) -> Check:
    name, instance = f"{spec.key} price", upstream.instance
    if spec.price_per_hour is not None:
        return _ok(name, f"${spec.price_per_hour:.2f}/h, from price_per_hour in {CONFIG_VARIABLE}")
    live = await prices.of(upstream.namespace)
    if instance and live and instance in live:
        return _ok(name, f"${live[instance]:.2f}/h for {instance}, from HF's live hardware list")
    published = price_for(instance)
    if published is not None:
        why = "could not be read" if live is None else "does not list it"
        return _ok(name, f"${published:.2f}/h for {instance}, from HF's published list (the live list {why})")
    detail = f"no price known for {instance or 'its instance'}: its costs and savings count as $0"
    return _warn(name, detail, f"set price_per_hour in [endpoints.{spec.key}] of {CONFIG_VARIABLE}")


async def _unmanaged_check(spec: EndpointSpec, management: ManagementAPI) -> Check:
    url = spec.inference_url or spec.url
    name, shown = f"{spec.key} endpoint", _address(url)
    if await management.probe(url, "/health"):
        return _ok(name, f"served, not managed: {shown}/health answers 200")
    detail = f"served, not managed: {shown}/health does not answer 200, so it is down for crazy-gary"
    return _error(name, detail, f"start the server at {shown}, or fix endpoints.{spec.key}.inference_url")


def _address(url: str) -> str:
    """scheme://host:port/path of a URL, without a user, password or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


async def _redis_check(url: str) -> Check:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    name = "redis"
    try:
        client = Redis.from_url(url, socket_timeout=_CONNECT_TIMEOUT, socket_connect_timeout=_CONNECT_TIMEOUT)
    except ValueError:
        return _error(name, "CRAZY_GARY_REDIS_URL is not a Redis URL", "use redis://HOST:PORT/DB")
    settings = client.connection_pool.connection_kwargs
    where = settings.get("path") or f"{settings.get('host', '?')}:{settings.get('port', '?')}"
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        detail = f"Redis at {where} does not answer PING ({type(exc).__name__})"
        return _error(name, detail, "start Redis, or fix CRAZY_GARY_REDIS_URL (or unset it for one replica)")
    finally:
        await client.aclose()
    return _ok(name, f"Redis at {where} answers PING")


async def _store_check(settings: Settings) -> Check:
    from sqlalchemy.engine import make_url

    from crazy_gary.store import database_url

    url = make_url(database_url(settings.database_url, settings.data_dir))
    if url.get_backend_name() == "sqlite":
        return _sqlite_check(url.database)
    return await _server_store_check(url)


def _sqlite_check(database: str | None) -> Check:
    name = "store"
    if not database or database == ":memory:":
        return _warn(name, "SQLite in memory: nothing survives a restart", "set CRAZY_GARY_DATABASE_URL")
    path = Path(database)
    fix = "set CRAZY_GARY_DATA_DIR to a writable folder, or CRAZY_GARY_DATABASE_URL"
    if path.exists():
        if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK)):
            return _error(name, f"SQLite at {path}: the file or its folder is not writable", fix)
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            return _error(
                name, f"SQLite at {path} cannot be read: {exc}", "move it away; serve makes a new one"
            )
        return _ok(name, f"SQLite at {path}: readable, and the file and its folder are writable")
    folder = next((parent for parent in path.parents if parent.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        return _error(name, f"SQLite at {path}: {folder or path.parent} is not a writable folder", fix)
    return _ok(name, f"SQLite at {path}: not there yet; serve creates it ({folder} is writable)")


async def _server_store_check(url: URL) -> Check:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.ext.asyncio import create_async_engine

    name = "store"
    port = f":{url.port}" if url.port else ""
    where = f"{url.get_backend_name()} at {url.host or 'localhost'}{port}/{url.database or ''}"
    connect_args = {"timeout": _CONNECT_TIMEOUT} if url.get_driver_name() == "asyncpg" else {}
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        cause = getattr(exc, "orig", None) or exc
        said = str(cause).splitlines()[0][:200] if str(cause) else ""
        detail = f"{where} cannot be reached: {type(cause).__name__}{': ' + said if said else ''}"
        return _error(name, detail, "start the database, or fix CRAZY_GARY_DATABASE_URL")
    finally:
        await engine.dispose()
    return _ok(name, f"{where} answers")
