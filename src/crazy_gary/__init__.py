"""crazy-gary keeps large language models on Hugging Face Inference Endpoints cheap and always answering.

The public names are loaded on first use: every ``crazy_gary.*`` import, the ``crazy-gary`` command's
included, runs this file, and ``crazy-gary status`` or ``import crazy_gary.core.manager`` should not
load the server stack that ``HarmonyClient`` brings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crazy_gary.client import HarmonyClient
    from crazy_gary.clock import Clock, ManualClock, SystemClock
    from crazy_gary.config import Settings, load_settings
    from crazy_gary.core.manager import HuggingFaceEndpointManager
    from crazy_gary.core.specs import EndpointSpec
    from crazy_gary.core.status import EndpointStatus
    from crazy_gary.errors import CrazyGaryError

__all__ = [
    "Clock",
    "CrazyGaryError",
    "EndpointSpec",
    "EndpointStatus",
    "HarmonyClient",
    "HuggingFaceEndpointManager",
    "ManualClock",
    "Settings",
    "SystemClock",
    "load_settings",
]

_HOMES = {
    "Clock": "crazy_gary.clock",
    "CrazyGaryError": "crazy_gary.errors",
    "EndpointSpec": "crazy_gary.core.specs",
    "EndpointStatus": "crazy_gary.core.status",
    "HarmonyClient": "crazy_gary.client",
    "HuggingFaceEndpointManager": "crazy_gary.core.manager",
    "ManualClock": "crazy_gary.clock",
    "Settings": "crazy_gary.config",
    "SystemClock": "crazy_gary.clock",
    "load_settings": "crazy_gary.config",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'crazy_gary' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
