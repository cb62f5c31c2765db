"""The frozen picture of an endpoint that the REST API, the CLI and HarmonyClient show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crazy_gary.core.status import EndpointView

if TYPE_CHECKING:
    from crazy_gary.core.endpoint import Endpoint

__all__ = ["endpoint_view"]


def endpoint_view(endpoint: Endpoint, now: float) -> EndpointView:
    """`endpoint` at wall time `now`: its status, times, HF's word, counts and the first problem."""
    due = endpoint.sleep_due()
    upstream = endpoint.upstream
    instance = upstream.instance if upstream else None
    price = endpoint.price_per_hour
    return EndpointView(
        key=endpoint.key,
        status=endpoint.status(),
        url=endpoint.spec.url,
        last_activity=endpoint.last_activity,
        wake_time=endpoint.wake_time,
        sleep_time=endpoint.sleep_time,
        auto_sleep_in=None if due is None else max(0.0, due - now),
        hf_state=endpoint.hf_state,
        name=endpoint.spec.name,
        namespace=endpoint.spec.namespace,
        model=upstream.repository if upstream else None,
        task=upstream.task if upstream else None,
        instance=instance,
        price_per_hour=price,
        managed=endpoint.spec.managed,
        in_flight=endpoint.in_flight + endpoint.in_flight_elsewhere,
        pending=endpoint.pending,
        max_concurrency=endpoint.spec.max_concurrency,
        queued=endpoint.gate.queued,
        circuit=endpoint.breaker.state.value,
        operation=endpoint.operation,
        error=endpoint.failure
        or endpoint.last_error
        or endpoint.poll_error
        or endpoint.hf_failure
        or endpoint.load_problem(now),
        timed_out=endpoint.timed_out and endpoint.failure is not None,
        hf_message=upstream.message if upstream and endpoint.reachable else None,
        hf_scale_to_zero_timeout=upstream.scale_to_zero_timeout if upstream else None,
        warm_until=endpoint.spec.warm.warm_until(now) if endpoint.spec.warm is not None else None,
    )
