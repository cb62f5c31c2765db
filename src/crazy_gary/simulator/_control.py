"""The control API under `/_sim` for tests and benchmarks; it needs no token."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._config import STATES
from ._http import read_json
from ._state import START_ON, EndpointFaults, EndpointRecord
from ._world import ManagementFaults, World

__all__ = ["ControlAPI"]

_ENDPOINT_KEYS = frozenset(
    {
        "state",
        "cold_start",
        "latency_ms",
        "error_rate",
        "error_status",
        "disconnect_rate",
        "ready_delay",
        "pending",
        "start_on",
    }
)
_MANAGEMENT_KEYS = frozenset({"error_rate", "error_status", "latency_ms", "malformed_rate", "retry_after"})
_MAX_SECONDS = 1e9  # a cold start this long never ends in practice


class ControlAPI:
    """Set states and faults, read call counts, reset everything."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_sim/endpoints/{name}", self.get_endpoint, methods=["GET"]),
            Route("/_sim/endpoints/{name}", self.put_endpoint, methods=["PUT"]),
            Route("/_sim/management", self.get_management, methods=["GET"]),
            Route("/_sim/management", self.put_management, methods=["PUT"]),
            Route("/_sim/calls", self.calls, methods=["GET"]),
            Route("/_sim/reset", self.reset, methods=["POST"]),
        ]

    async def get_endpoint(self, request: Request) -> Response:
        return JSONResponse(self._settings(self._record(request)))

    async def put_endpoint(self, request: Request) -> Response:
        record = self._record(request)
        body = _object(await read_json(request), _ENDPOINT_KEYS)
        # Check every value before changing anything, so a bad body changes nothing.
        state = body.get("state")
        if "state" in body and state not in STATES:
            raise HTTPException(400, f"state must be one of {', '.join(STATES)}")
        faults = _endpoint_faults(body, record.faults)
        if faults != record.faults:
            record.faults = faults
            record.faults_changed()
        if isinstance(state, str):
            record.set_state(state, self.world.now())
        return JSONResponse(self._settings(record))

    async def get_management(self, request: Request) -> Response:
        return JSONResponse(self.world.management.as_json())

    async def put_management(self, request: Request) -> Response:
        body = _object(await read_json(request), _MANAGEMENT_KEYS)
        current = self.world.management
        faults = ManagementFaults(
            error_rate=_number(body, "error_rate", 0.0, 1.0, current.error_rate),
            error_status=_status(body, current.error_status),
            latency_ms=_number(body, "latency_ms", 0.0, _MAX_SECONDS * 1000, current.latency_ms),
            malformed_rate=_number(body, "malformed_rate", 0.0, 1.0, current.malformed_rate),
            retry_after=_optional_number(body, "retry_after", _MAX_SECONDS, current.retry_after),
        )
        self.world.management = faults
        return JSONResponse(faults.as_json())

    async def calls(self, request: Request) -> Response:
        return JSONResponse(self.world.calls_json())

    async def reset(self, request: Request) -> Response:
        self.world.reset()
        return JSONResponse({"reset": True})

    def _record(self, request: Request) -> EndpointRecord:
        name = request.path_params["name"]
        record = self.world.records.get(name)
        if record is None:
            raise HTTPException(404, f"Endpoint {name} not found")
        return record

    def _settings(self, record: EndpointRecord) -> dict[str, Any]:
        return {"name": record.name, "state": record.state(self.world.now()), **record.faults.as_json()}


def _endpoint_faults(body: dict[str, Any], current: EndpointFaults) -> EndpointFaults:
    """`current` with the settings of `body`, each checked; raises 400 on the first bad one."""
    start_on = body.get("start_on", current.start_on)
    if start_on not in START_ON:
        raise HTTPException(400, f"start_on must be one of {', '.join(START_ON)}")
    return EndpointFaults(
        cold_start=_number(body, "cold_start", 0.0, _MAX_SECONDS, current.cold_start),
        latency_ms=_number(body, "latency_ms", 0.0, _MAX_SECONDS * 1000, current.latency_ms),
        error_rate=_number(body, "error_rate", 0.0, 1.0, current.error_rate),
        error_status=_status(body, current.error_status),
        disconnect_rate=_number(body, "disconnect_rate", 0.0, 1.0, current.disconnect_rate),
        ready_delay=_number(body, "ready_delay", 0.0, _MAX_SECONDS, current.ready_delay),
        pending=_number(body, "pending", 0.0, _MAX_SECONDS, current.pending),
        start_on=start_on,
    )


def _object(body: object, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HTTPException(400, f"unknown settings {unknown}; known: {sorted(allowed)}")
    return body


def _number(body: dict[str, Any], key: str, low: float, high: float, current: float) -> float:
    """`body[key]` checked to lie in [low, high], or `current` when absent."""
    if key not in body:
        return current
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise HTTPException(400, f"{key} must be a number from {low} to {high}")
    return float(value)


def _optional_number(body: dict[str, Any], key: str, high: float, current: float | None) -> float | None:
    """`body[key]` checked to be null or lie in [0, high], or `current` when absent."""
    if key not in body:
        return current
    value = body[key]
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high
    ):
        raise HTTPException(400, f"{key} must be null or a number of seconds from 0 to {high}")
    return None if value is None else float(value)


def _status(body: dict[str, Any], current: int) -> int:
    if "error_status" not in body:
        return current
    value = body["error_status"]
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise HTTPException(400, "error_status must be an HTTP status code from 400 to 599")
    return value
