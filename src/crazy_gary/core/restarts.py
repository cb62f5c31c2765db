"""After a restart: the live prices once, and the operations the previous run left unfinished."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from crazy_gary.clock import Clock, wait_any
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.ports import ManagementAPI
from crazy_gary.core.status import EndpointStatus
from crazy_gary.errors import ManagementError

__all__ = ["finish_unfinished", "live_prices"]

logger = logging.getLogger("crazy_gary.manager")


async def live_prices(
    management: ManagementAPI, endpoints: Iterable[Endpoint], *, into: dict[str, float]
) -> None:
    """HF's live prices of the endpoints' namespaces, added `into` the prices the endpoints read; a
    namespace whose hardware list cannot be had is left out (the published list stands for it)."""
    for namespace in {e.spec.namespace for e in endpoints if e.spec.namespace}:
        try:
            into.update(await management.prices(namespace))
        except ManagementError as exc:
            logger.info("live prices of %s unavailable: %s", namespace, exc.message)


async def finish_unfinished(
    endpoints: Iterable[Endpoint],
    clock: Clock,
    operate: Callable[..., object],
) -> None:
    """Once every endpoint was read, carry out (through the manager's `operate`) the wake or sleep a
    previous run accepted and did not finish, as `<actor> (resumed after restart)`, unless the
    endpoint is already where it was going."""
    endpoints = list(endpoints)
    while not all(endpoint.seen for endpoint in endpoints):
        await wait_any(clock, [endpoint.updated() for endpoint in endpoints], 1.0)
    for endpoint in endpoints:
        if endpoint.recover is None or endpoint.operation is not None:
            continue
        operation, actor = endpoint.take_recovery() or (None, None)
        recovered = f"{actor or 'api'} (resumed after restart)"
        if operation == "sleep" and not endpoint.hf_sleeping:
            operate("sleep", endpoint.key, actor=recovered)
        elif (
            operation == "wake" and not endpoint.hf_running and endpoint.status() is not EndpointStatus.ERROR
        ):
            operate("wake", endpoint.key, actor=recovered)
