"""Hugging Face's own idle timer and replica counts: the safety net under crazy-gary's auto-sleep.

HF scales an endpoint to zero by itself after `scaleToZeroTimeout` minutes without a request, when
its `minReplica` is 0. Set a little longer than crazy-gary's auto-sleep, that timer never fires
while crazy-gary runs, and still puts the endpoint to sleep if crazy-gary stops. A pause sets both
replica counts to 0 and a resume sets both to 1, which turns HF's timer off; after a resume
crazy-gary puts the counts back as they were before the pause.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from crazy_gary.clock import Clock, wait_any
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.poller import StatusPoller
from crazy_gary.core.ports import ManagementAPI, UpstreamEndpoint
from crazy_gary.core.returns import LEAD, WINDOW
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import HfState
from crazy_gary.errors import ManagementError

__all__ = ["IdleTimerSetting", "ScalingKeeper", "longest_idle", "set_idle_timers", "wanted_idle_timer"]

logger = logging.getLogger("crazy_gary.manager")

IdleTimerSetting = str  # "auto", "off" or a whole number of minutes, as CRAZY_GARY_HF_SCALE_TO_ZERO says
_MARGIN_MINUTES = 15  # HF's timer runs this long past crazy-gary's auto-sleep under `auto`
ACTOR = "crazy-gary"


def longest_idle(spec: EndpointSpec, auto_sleep: float) -> float:
    """Seconds crazy-gary may keep the endpoint up without a request: its auto-sleep, the longest
    an adaptive one may learn or keep it up ahead of a predicted return, the longest warm window.
    HF's own timer must not fire before."""
    if auto_sleep <= 0:
        return 0.0
    longest = auto_sleep
    if spec.adaptive is not None:
        longest = max(longest, spec.adaptive.maximum, LEAD + WINDOW)
    if spec.warm is not None:
        longest = max(longest, spec.warm.longest_window())
    return longest


def wanted_idle_timer(setting: IdleTimerSetting, auto_sleep: float) -> int | None:
    """The minutes HF's own idle timer should be set to, or None to leave it alone."""
    if setting == "off":
        return None
    if setting == "auto":
        return None if auto_sleep <= 0 else math.ceil(auto_sleep / 60) + _MARGIN_MINUTES
    return int(setting)


class ScalingKeeper:
    """Sets HF's idle timer and replica counts where they differ from what crazy-gary needs."""

    def __init__(
        self,
        management: ManagementAPI,
        poller: StatusPoller,
        setting: IdleTimerSetting,
        emit: Callable[[ManagerEvent], None],
    ) -> None:
        self._management = management
        self._poller = poller
        self._setting = setting
        self._emit = emit

    async def set_idle_timer(self, endpoint: Endpoint) -> None:
        """At start: HF's idle timer as the setting wants it (a paused endpoint waits for its resume,
        when its counts are put back anyway)."""
        upstream = endpoint.upstream
        wanted = wanted_idle_timer(self._setting, longest_idle(endpoint.spec, endpoint.auto_sleep))
        if (
            upstream is None
            or wanted is None
            or upstream.max_replica == 0
            or upstream.state == HfState.PAUSED
        ):
            return
        if upstream.scale_to_zero_timeout == wanted and upstream.min_replica == 0:
            return
        await self._update(endpoint, upstream, 0, max(upstream.max_replica or 1, 1), wanted, "idle timer")

    async def restore_after_resume(self, endpoint: Endpoint, before_pause: tuple[int, int] | None) -> bool:
        """After a resume: the counts from before the pause, and the idle timer. Without them, only
        HF's resume counts (1 and 1) are changed, to 0 and 1 so that HF's own timer works; counts
        someone set otherwise are left alone. False when HF refused the change."""
        upstream = endpoint.upstream
        if upstream is None:
            return False
        counts = (upstream.min_replica, upstream.max_replica)
        if before_pause is not None and before_pause[1] > 0:
            low, high = before_pause
        elif counts == (1, 1):
            low, high = 0, 1
        else:
            return True
        wanted = wanted_idle_timer(self._setting, longest_idle(endpoint.spec, endpoint.auto_sleep))
        timeout = wanted if wanted is not None else upstream.scale_to_zero_timeout
        if (*counts, upstream.scale_to_zero_timeout) == (low, high, timeout):
            return True
        return await self._update(endpoint, upstream, low, high, timeout, "replica counts after a resume")

    async def _update(
        self,
        endpoint: Endpoint,
        upstream: UpstreamEndpoint,
        low: int,
        high: int,
        timeout: int | None,
        why: str,
    ) -> bool:
        details: dict[str, Any] = {
            "reason": why,
            "min_replica": [upstream.min_replica, low],
            "max_replica": [upstream.max_replica, high],
            "scale_to_zero_timeout": [upstream.scale_to_zero_timeout, timeout],
        }
        namespace, name = endpoint.spec.namespace, endpoint.spec.name
        assert namespace is not None and name is not None, "only managed endpoints are configured"
        error: str | None = None
        try:
            ticket = self._poller.ticket()  # the answer is applied in order with the readings
            answer = await self._management.update_scaling(
                namespace, name, min_replica=low, max_replica=high, scale_to_zero_timeout=timeout
            )
            self._poller.apply(endpoint, answer, ticket)
        except ManagementError as exc:
            error = exc.message
            logger.warning("could not set the scaling of %s: %s", endpoint.key, error)
        self._emit(
            ManagerEvent(
                "operation_done",
                endpoint.key,
                operation="configure",
                actor=ACTOR,
                success=error is None,
                error=error,
                details=details,
            )
        )
        return error is None


async def set_idle_timers(endpoints: Iterable[Endpoint], clock: Clock, keeper: ScalingKeeper) -> None:
    """At start, HF's idle timer of each managed endpoint, as soon as HF first answers for it (a
    namespace that could not be read at first is set once it can)."""
    waiting = [endpoint for endpoint in endpoints if endpoint.spec.managed]
    while waiting:
        for endpoint in [endpoint for endpoint in waiting if endpoint.reachable]:
            waiting.remove(endpoint)
            await keeper.set_idle_timer(endpoint)
        if waiting:
            await wait_any(clock, [endpoint.updated() for endpoint in waiting], 10.0)
