"""HarmonyClient: the engine in-process, for Python programs (SPEC §5)."""

from __future__ import annotations

from typing import Any

from crazy_gary.clock import Clock, SystemClock
from crazy_gary.config import Settings, load_settings
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import ManagementAPI
from crazy_gary.core.status import EndpointStatus
from crazy_gary.hf.management import HfManagement

__all__ = ["HarmonyClient"]


class HarmonyClient:
    """The same manager the server runs, as an async context manager.

    `async with HarmonyClient() as client:` reads the settings from the environment; the answers of
    the status methods are the endpoint objects of the REST API.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        management: ManagementAPI | None = None,
    ) -> None:
        self._settings = settings or load_settings()
        self._clock = clock or SystemClock()
        self._owned: HfManagement | None = None
        if management is None:
            management = self._owned = HfManagement(self._settings.token, self._settings.endpoints_api_url)
        self.manager = HuggingFaceEndpointManager.from_settings(self._settings, management, self._clock)

    async def __aenter__(self) -> HarmonyClient:
        await self.manager.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.manager.close()
        if self._owned is not None:
            await self._owned.aclose()

    async def get_all_endpoint_status(self) -> dict[str, dict[str, Any]]:
        """Every endpoint object by key, as `GET /api/endpoints/status` shows them."""
        return {key: view.to_dict() for key, view in self.manager.all_status().items()}

    async def get_endpoint_status(self, model_type: str) -> dict[str, Any]:
        """One endpoint object."""
        key = self.manager.resolve(model_type)
        return self.manager.status(key).to_dict()

    async def wake_endpoint(self, model_type: str) -> bool:
        """True once the wake is accepted (or the endpoint already runs)."""
        result = self.manager.wake(self.manager.resolve(model_type), actor="harmony-client")
        return result.status is not EndpointStatus.ERROR

    async def sleep_endpoint(self, model_type: str) -> bool:
        """True once the sleep is accepted (or the endpoint already sleeps)."""
        result = self.manager.sleep(self.manager.resolve(model_type), actor="harmony-client")
        return result.status is not EndpointStatus.ERROR

    async def wake_all_endpoints(self) -> dict[str, bool]:
        return {key: await self.wake_endpoint(key) for key in self.manager.keys}

    async def sleep_all_endpoints(self) -> dict[str, bool]:
        return {key: await self.sleep_endpoint(key) for key in self.manager.keys}
