"""The management API v2 under `/v2`, as `huggingface_hub`'s client talks to it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._catalog import provider_json
from ._http import base_url, read_json, require_token
from ._specs import SpecError, merge_spec, spec_from_create
from ._state import EndpointRecord, render_endpoint
from ._world import World

__all__ = ["ManagementAPI"]

_CANNOT_RESUME = frozenset({"failed", "updateFailed"})
_RESUMABLE = frozenset({"paused", "scaledToZero"})


class ManagementAPI:
    """Routes of `/v2`; every call needs the configured bearer token and may meet injected faults."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[BaseRoute]:
        one = "/v2/endpoint/{namespace}/{name}"
        return [
            Route("/v2/endpoint/{namespace}", self.list_endpoints, methods=["GET"]),
            Route("/v2/endpoint/{namespace}", self.create_endpoint, methods=["POST"]),
            Route(one, self.get_endpoint, methods=["GET"]),
            Route(one, self.update_endpoint, methods=["PUT"]),
            Route(one, self.delete_endpoint, methods=["DELETE"]),
            Route(one + "/pause", self.pause_endpoint, methods=["POST"]),
            Route(one + "/resume", self.resume_endpoint, methods=["POST"]),
            Route(one + "/scale-to-zero", self.scale_endpoint_to_zero, methods=["POST"]),
            Route("/v2/provider/{namespace}", self.list_hardware, methods=["GET"]),
        ]

    async def list_endpoints(self, request: Request) -> Response:
        await self._admit(request)
        self.world.list_calls += 1
        self._maybe_fail()
        if not self._own_namespace(request):
            return JSONResponse({"items": []})
        now, base = self.world.now(), base_url(request)
        items = [render_endpoint(record, base, now) for record in self.world.records.values()]
        return JSONResponse({"items": items})

    async def create_endpoint(self, request: Request) -> Response:
        await self._admit(request)
        self._maybe_fail()
        if not self._own_namespace(request):
            raise HTTPException(404, f"Namespace {request.path_params['namespace']} not found")
        try:
            name, spec = spec_from_create(await read_json(request))
        except SpecError as exc:
            raise HTTPException(400, f"Invalid endpoint configuration: {exc}") from exc
        if name in self.world.records:
            raise HTTPException(409, f"Endpoint {name} already exists")
        return self._answer(request, self.world.create(name, spec))

    async def get_endpoint(self, request: Request) -> Response:
        return self._answer(request, await self._endpoint(request, "get"))

    async def update_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "update")
        try:
            record.spec = merge_spec(record.spec, await read_json(request))
        except SpecError as exc:
            raise HTTPException(400, f"Invalid endpoint configuration: {exc}") from exc
        record.touch(self.world.now())
        return self._answer(request, record)

    async def delete_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "delete")
        self.world.delete(record.name)
        return JSONResponse({})

    async def pause_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "pause")
        record.set_state("paused", self.world.now())
        return self._answer(request, record)

    async def resume_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "resume")
        state = record.state(self.world.now())
        if state == "running":
            raise HTTPException(400, f"Endpoint {record.name} is already running")
        if state in _CANNOT_RESUME:
            raise HTTPException(400, f"Endpoint {record.name} is {state} and cannot be resumed")
        if state in _RESUMABLE:
            self.world.start(record)
        return self._answer(request, record)

    async def scale_endpoint_to_zero(self, request: Request) -> Response:
        record = await self._endpoint(request, "scale-to-zero")
        record.set_state("scaledToZero", self.world.now())
        return self._answer(request, record)

    async def list_hardware(self, request: Request) -> Response:
        await self._admit(request)
        self._maybe_fail()
        return JSONResponse(provider_json(self.world.accelerators_in_use()))

    async def _admit(self, request: Request) -> None:
        """Check the token, then wait the injected latency."""
        require_token(request, self.world.config.token)
        latency = self.world.management.latency_ms
        if latency > 0:
            await self.world.clock.sleep(latency / 1000)

    def _maybe_fail(self) -> None:
        faults = self.world.management
        if self.world.roll(faults.error_rate):
            raise HTTPException(faults.error_status, "Simulated management API fault")

    def _own_namespace(self, request: Request) -> bool:
        return bool(request.path_params["namespace"] == self.world.config.namespace)

    async def _endpoint(self, request: Request, kind: str) -> EndpointRecord:
        """The endpoint named in the path, after auth, latency, counting and fault injection."""
        await self._admit(request)
        name = request.path_params["name"]
        record = self.world.records.get(name) if self._own_namespace(request) else None
        if record is not None:
            self.world.count(name, kind)
        self._maybe_fail()
        if record is None:
            namespace = request.path_params["namespace"]
            raise HTTPException(404, f"Endpoint {namespace}/{name} not found")
        return record

    def _answer(self, request: Request, record: EndpointRecord) -> JSONResponse:
        return JSONResponse(render_endpoint(record, base_url(request), self.world.now()))
