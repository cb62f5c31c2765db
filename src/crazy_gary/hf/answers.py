"""Reading what the management API answers: endpoint objects, rate-limit headers, error statuses.

Every answer is checked here before the core sees it, so a malformed one is an error of ours with
a reason, never a `KeyError` from deep inside a library.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.errors import (
    ManagementAuthError,
    ManagementError,
    ManagementRejected,
    ManagementUnavailable,
)

__all__ = ["MalformedAnswer", "retry_after", "to_upstream", "translate"]

_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# RFC 9651 structured field of the IETF RateLimit draft, as the Hub sends it: `"api";r=0;t=42`
_RATELIMIT_PARAM = re.compile(r";\s*([rt])\s*=\s*(\d+)")


class MalformedAnswer(ValueError):
    """An answer of the management API that does not say what an endpoint object must."""


def to_upstream(raw: object, namespace: str) -> UpstreamEndpoint:
    """One endpoint object of the API, checked; raises MalformedAnswer naming what is missing."""
    body = _mapping(raw, "the endpoint object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedAnswer("an endpoint object has no name")
    status = _mapping(body.get("status"), f"the status of {name}")
    state = status.get("state")
    if not isinstance(state, str) or not state:
        raise MalformedAnswer(f"the status of {name} has no state")
    compute = _optional_mapping(body.get("compute"))
    scaling = _optional_mapping(compute.get("scaling"))
    provider = _optional_mapping(body.get("provider"))
    model = _optional_mapping(body.get("model"))
    health_route = body.get("healthRoute")
    return UpstreamEndpoint(
        namespace=namespace,
        name=name,
        state=state,
        url=_text(status.get("url")),
        repository=_text(model.get("repository")),
        task=_text(model.get("task")),
        vendor=_text(provider.get("vendor")),
        region=_text(provider.get("region")),
        instance_type=_text(compute.get("instanceType")),
        instance_size=_text(compute.get("instanceSize")),
        message=_text(status.get("message")),
        health_route=health_route if isinstance(health_route, str) and health_route else "/health",
        min_replica=_count(scaling.get("minReplica")),
        max_replica=_count(scaling.get("maxReplica")),
        scale_to_zero_timeout=_count(scaling.get("scaleToZeroTimeout")),
    )


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else the `t` of a
    `RateLimit` header whose remaining `r` is 0; None when the answer does not say."""
    raw = headers.get("retry-after")
    if raw is not None:
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            return max(0.0, moment.timestamp() - (time.time() if now is None else now))
    params = dict(_RATELIMIT_PARAM.findall(headers.get("ratelimit", "")))
    if params.get("r") == "0" and "t" in params:
        return float(params["t"])
    return None


def translate(what: str, namespace: str, status: int | None, api_url: str) -> ManagementError:
    """Our error for a failed call: `what` was asked of `namespace`, the answer had `status`."""
    if status in (401, 403):
        return ManagementAuthError(
            f"Hugging Face answered {status} when asked to {what}. Either HUGGINGFACE_API_KEY is wrong, "
            f"or it gives no access to the namespace '{namespace}', or '{namespace}' has no billing set up."
        )
    if status is None:
        return ManagementUnavailable(f"The Hugging Face management API at {api_url} could not be reached.")
    if status in _TRANSIENT_STATUS:
        return ManagementUnavailable(
            f"The Hugging Face management API answered {status} when asked to {what}."
        )
    if status == 404:
        return ManagementRejected(f"Hugging Face found nothing to {what} (404).", status)
    return ManagementRejected(f"Hugging Face refused to {what} ({status}).", status)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswer(f"{what} is missing or not an object")
    return value


def _optional_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return int(value)
