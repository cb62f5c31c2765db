"""What an endpoint is configured to be: the core's own type, which the settings build."""

from __future__ import annotations

from dataclasses import dataclass

from crazy_gary.core.adaptive import AdaptiveSettings
from crazy_gary.core.schedules import WarmSchedule

__all__ = ["EndpointSpec"]


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint crazy-gary knows, by key (`120b`).

    Managed endpoints have `namespace`/`name` on Hugging Face; unmanaged ones only an `inference_url`.
    `auto_sleep` and `wake_timeout` (seconds) override the settings' defaults when given; `warm`
    holds the windows it is kept awake in (`crazy_gary.core.schedules`); `max_concurrency` the
    requests it may serve at once, the others queued (`crazy_gary.core.gate`).
    """

    key: str
    url: str
    namespace: str | None = None
    name: str | None = None
    inference_url: str | None = None
    fallback: str | None = None
    price_per_hour: float | None = None
    auto_sleep: float | None = None
    wake_timeout: float | None = None
    warm: WarmSchedule | None = None
    adaptive: AdaptiveSettings | None = None  # `auto_sleep = "adaptive"`: learnt, within its bounds
    max_concurrency: int | None = None  # requests on it at once (per replica); None: no limit

    @property
    def managed(self) -> bool:
        """Whether crazy-gary wakes and sleeps it through the management API."""
        return self.inference_url is None
