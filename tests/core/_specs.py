"""The two endpoints the core's tests manage (120b falls back to 20b), and short names of statuses."""

from __future__ import annotations

from crazy_gary.core.specs import EndpointSpec
from crazy_gary.core.status import EndpointStatus

RUNNING, SLEEPING, STARTING, ERROR, UNKNOWN = (
    EndpointStatus.RUNNING,
    EndpointStatus.SLEEPING,
    EndpointStatus.STARTING,
    EndpointStatus.ERROR,
    EndpointStatus.UNKNOWN,
)

SPECS = [
    EndpointSpec(key="120b", url="demo/gpt-oss-120b", namespace="demo", name="gpt-oss-120b", fallback="20b"),
    EndpointSpec(key="20b", url="demo/gpt-oss-20b", namespace="demo", name="gpt-oss-20b"),
]
