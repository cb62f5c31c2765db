"""The control API under `/_sim` for tests and benchmarks; it needs no token."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._config import STATES
from ._http import read_json
from ._state import EndpointRecord
from ._world import World

__all__ = ["ControlAPI"]

_ENDPOINT_KEYS = frozenset(
    {"state", "cold_start", "latency_ms", "error_rate", "error_status", "disconnect_rate"}
)
_MANAGEMENT_KEYS = frozenset({"error_rate", "error_status", "latency_ms"})
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
        faults = record.faults
        # Check every value before changing anything, so a bad body changes nothing.
        state = body.get("state")
        if "state" in body and state not in STATES:
            raise HTTPException(400, f"state must be one of {', '.join(STATES)}")
        cold_start = _number(body, "cold_start", 0.0, _MAX_SECONDS, faults.cold_start)
        latency_ms = _number(body, "latency_ms", 0.0, _MAX_SECONDS * 1000, faults.latency_ms)
        error_rate = _number(body, "error_rate", 0.0, 1.0, faults.error_rate)
        error_status = _status(body, faults.error_status)
        disconnect_rate = _number(body, "disconnect_rate", 0.0, 1.0, faults.disconnect_rate)
        faults.latency_ms, faults.error_rate, faults.error_status = latency_ms, error_rate, error_status
        faults.disconnect_rate = disconnect_rate
        if cold_start != faults.cold_start:
            record.set_cold_start(cold_start)
        if isinstance(state, str):
            record.set_state(state, self.world.now())
        return JSONResponse(self._settings(record))

    async def get_management(self, request: Request) -> Response:
        return JSONResponse(self.world.management.as_json())

    async def put_management(self, request: Request) -> Response:
        body = _object(await read_json(request), _MANAGEMENT_KEYS)
        faults = self.world.management
        error_rate = _number(body, "error_rate", 0.0, 1.0, faults.error_rate)
        error_status = _status(body, faults.error_status)
        latency_ms = _number(body, "latency_ms", 0.0, _MAX_SECONDS * 1000, faults.latency_ms)
        faults.error_rate, faults.error_status, faults.latency_ms = error_rate, error_status, latency_ms
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


def _status(body: dict[str, Any], current: int) -> int:
    if "error_status" not in body:
        return current
    value = body["error_status"]
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise HTTPException(400, "error_status must be an HTTP status code from 400 to 599")
    return value
