"""The Hugging Face checks of `crazy-gary doctor`: namespaces, endpoints, idle timers, health, prices.

Only reads: an endpoint is never started, woken or changed, and a health route is only asked of an
endpoint that runs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from crazy_gary.config import Settings
from crazy_gary.core.costs import price_for
from crazy_gary.core.ports import ManagementAPI, UpstreamEndpoint
from crazy_gary.core.scaling import longest_idle, wanted_idle_timer
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import HF_FAILED, HfState
from crazy_gary.doctor._check import Check, error, ok, warn
from crazy_gary.endpoint_file import CONFIG_VARIABLE
from crazy_gary.errors import ManagementAuthError, ManagementError, ManagementUnavailable

__all__ = ["hugging_face_checks"]


async def hugging_face_checks(settings: Settings, management: ManagementAPI) -> list[Check]:
    """Each namespace the token must list, then each endpoint: managed ones as HF reports them,
    unmanaged ones by their health route."""
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
        return error(name, exc.message, fix), None
    except ManagementUnavailable as exc:
        fix = "check HF_ENDPOINTS_API_URL and the network (a proxy? HF_HUB_OFFLINE=1 blocks every call)"
        return error(name, exc.message, fix), None
    except ManagementError as exc:
        return error(name, exc.message, f"check the namespace '{namespace}' of the endpoint addresses"), None
    count = f"{len(endpoints)} endpoint{'' if len(endpoints) == 1 else 's'}"
    return ok(name, f"the token may list its endpoints ({count})"), {e.name: e for e in endpoints}


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
        return [error(f"{spec.key} endpoint", detail, f"check {_where_configured(settings, spec)}")]
    auto_sleep = spec.auto_sleep if spec.auto_sleep is not None else settings.auto_sleep
    wanted = wanted_idle_timer(settings.hf_scale_to_zero, longest_idle(spec, auto_sleep))
    checks = [
        _state_check(spec.key, upstream),
        _replica_check(spec.key, upstream, auto_sleep, wanted, settings.hf_scale_to_zero),
        _idle_timer_check(spec.key, upstream, auto_sleep, wanted, settings.hf_scale_to_zero),
    ]
    if upstream.state == HfState.RUNNING:
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
    if state in HF_FAILED:
        ui = f"https://endpoints.huggingface.co/{upstream.namespace}/endpoints/{upstream.name}"
        return error(name, f"{found}{said}", f"read its logs at {ui}, fix it there and restart it")
    if state == HfState.PENDING:
        return warn(
            name, f"{found}{said}", "HF waits for a free machine: wait, or pick another instance or region"
        )
    meaning = {
        HfState.RUNNING.value: "answering",
        HfState.SCALED_TO_ZERO.value: "asleep; crazy-gary wakes it when work arrives",
        HfState.PAUSED.value: "paused; crazy-gary resumes it when work arrives",
        HfState.INITIALIZING.value: "starting",
        HfState.UPDATING.value: "applying a change",
    }.get(state)
    if meaning is None:
        return warn(name, f"{found}{said}, a state crazy-gary does not know", "look at it in HF's UI")
    return ok(name, f"{found} ({meaning}{'; ' + what if what else ''})")


def _replica_check(
    key: str, upstream: UpstreamEndpoint, auto_sleep: float, wanted: int | None, setting: str
) -> Check:
    name = f"{key} replicas"
    low, high = upstream.min_replica, upstream.max_replica
    if low is None or high is None:
        return warn(name, "HF did not say its replica counts", "look at its scaling in HF's UI")
    counts = f"minReplica {low}, maxReplica {high}"
    if low < 1:
        return ok(name, counts)
    if auto_sleep <= 0:
        detail = f"{counts}: HF never scales it to zero and ENDPOINT_AUTO_SLEEP=0: it is billed while idle"
        return warn(name, detail, "set ENDPOINT_AUTO_SLEEP, or minReplica 0 in HF's UI")
    detail = (
        f"{counts}: HF never scales it to zero and bills it while idle; crazy-gary's auto-sleep still can"
    )
    fix = "set minReplica to 0 in HF's UI, or CRAZY_GARY_HF_SCALE_TO_ZERO=auto"
    if wanted is not None:
        fix = f"serve sets minReplica to 0 at start (CRAZY_GARY_HF_SCALE_TO_ZERO={setting})"
    return warn(name, detail, fix)


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
        return warn(name, f"HF will scale it to zero after {acting} min, before {ours}", fix)
    if ours and too_short:
        return warn(name, f"serve sets HF's idle timer to {after} min ({variable}), before {ours}", longer)
    if after is None:
        timer = "HF's idle timer is off" if current is None else "minReplica >= 1"
        if ours:
            detail = f"{timer} and {variable}: nothing puts it to sleep if crazy-gary stops"
            return warn(name, detail, "set CRAZY_GARY_HF_SCALE_TO_ZERO=auto, or HF's own timer")
        detail = f"{timer} and auto-sleep is off (ENDPOINT_AUTO_SLEEP=0): nothing puts it to sleep"
        return warn(name, detail, "set ENDPOINT_AUTO_SLEEP, or HF's own timer")
    shown = f"HF's idle timer is {f'{current} min' if current is not None else 'off'}"
    against = f"{ours}" if ours else "crazy-gary's auto-sleep is off"
    change = f"; serve sets it to {wanted} min at start ({variable})" if after != acting else ""
    return ok(name, f"{shown}, {against}{change}")


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60, 1):g} min"


async def _health_check(key: str, upstream: UpstreamEndpoint, management: ManagementAPI) -> Check:
    name, route = f"{key} health", upstream.health_route
    if upstream.url is None:
        return warn(name, "running, but HF gives no address for it", "look at it in HF's UI")
    if await management.probe(upstream.url, route):
        return ok(name, f"{route} answers 200")
    detail = f"running but its health route {route} does not answer 200: the model may still be loading"
    return warn(name, detail, "run doctor again in a few minutes; if it stays so, read its logs in HF's UI")


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
        return ok(name, f"${spec.price_per_hour:.2f}/h, from price_per_hour in {CONFIG_VARIABLE}")
    live = await prices.of(upstream.namespace)
    if instance and live and instance in live:
        return ok(name, f"${live[instance]:.2f}/h for {instance}, from HF's live hardware list")
    published = price_for(instance)
    if published is not None:
        why = "could not be read" if live is None else "does not list it"
        return ok(name, f"${published:.2f}/h for {instance}, from HF's published list (the live list {why})")
    detail = f"no price known for {instance or 'its instance'}: its costs and savings count as $0"
    return warn(name, detail, f"set price_per_hour in [endpoints.{spec.key}] of {CONFIG_VARIABLE}")


async def _unmanaged_check(spec: EndpointSpec, management: ManagementAPI) -> Check:
    url = spec.inference_url or spec.url
    name, shown = f"{spec.key} endpoint", _address(url)
    if await management.probe(url, "/health"):
        return ok(name, f"served, not managed: {shown}/health answers 200")
    detail = f"served, not managed: {shown}/health does not answer 200, so it is down for crazy-gary"
    return error(name, detail, f"start the server at {shown}, or fix endpoints.{spec.key}.inference_url")


def _address(url: str) -> str:
    """scheme://host:port/path of a URL, without a user, password or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"
