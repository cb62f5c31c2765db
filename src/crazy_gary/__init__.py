"""crazy-gary keeps large language models on Hugging Face Inference Endpoints cheap and always answering."""

from crazy_gary.client import HarmonyClient
from crazy_gary.clock import Clock, ManualClock, SystemClock
from crazy_gary.config import EndpointSpec, Settings, load_settings
from crazy_gary.core.manager import HuggingFaceEndpointManager
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
