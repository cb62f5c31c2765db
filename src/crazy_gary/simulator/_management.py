"""The management API v2 under `/v2`, as `huggingface_hub`'s client talks to it."""

from __future__ import annotations

import math
from typing import Any

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
        malformed = self.world.roll(self.world.management.malformed_rate)
        now, base = self.world.now(), base_url(request)
        items = [self._render(record, base, now, malformed) for record in self.world.records.values()]
        return JSONResponse({"items": items})

    async def create_endpoint(self, request: Request) -> Response:
        await self._admit(request)
        self._maybe_fail()
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
        now = self.world.now()
        try:
            spec = merge_spec(record.spec, await read_json(request), paused=record.state(now) == "paused")
        except SpecError as exc:
            raise HTTPException(400, f"Invalid endpoint configuration: {exc}") from exc
        scaling_changed = spec["compute"]["scaling"] != record.scaling
        record.update_spec(spec, now, scaling_changed=scaling_changed)
        return self._answer(request, record)

    async def delete_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "delete")
        self.world.delete(record.name)
        return JSONResponse({})

    async def pause_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "pause")
        now = self.world.now()
        record.set_replicas(0, 0, now)  # as Hugging Face does: no replica until a resume
        record.set_state("paused", now)
        return self._answer(request, record)

    async def resume_endpoint(self, request: Request) -> Response:
        record = await self._endpoint(request, "resume")
        state = record.state(self.world.now())
        if state == "running":
            raise HTTPException(400, f"Endpoint {record.name} is already running")
        if state in _CANNOT_RESUME:
            raise HTTPException(400, f"Endpoint {record.name} is {state} and cannot be resumed")
        if state in _RESUMABLE:
            # Resume sets both counts to 1, which turns HF's own scale to zero off until they are put back.
            record.set_replicas(1, 1, self.world.now())
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
        """Check the token and the namespace, then wait the injected latency."""
        require_token(request, self.world.config.token)
        namespace = request.path_params["namespace"]
        if namespace != self.world.config.namespace:
            # As Hugging Face answers for a namespace without access or without billing.
            raise HTTPException(
                401,
                f"Unauthorized: this token may not use namespace {namespace} "
                "(no access to it, or no billing set up for it)",
            )
        latency = self.world.management.latency_ms
        if latency > 0:
            await self.world.clock.sleep(latency / 1000)

    def _maybe_fail(self) -> None:
        faults = self.world.management
        if self.world.roll(faults.error_rate):
            headers = None
            if faults.error_status == 429 and faults.retry_after is not None:
                headers = {"Retry-After": str(math.ceil(faults.retry_after))}
            raise HTTPException(faults.error_status, "Simulated management API fault", headers=headers)

    async def _endpoint(self, request: Request, kind: str) -> EndpointRecord:
        """The endpoint named in the path, after auth, latency, counting and fault injection."""
        await self._admit(request)
        name = request.path_params["name"]
        record = self.world.records.get(name)
        if record is not None:
            self.world.count(name, kind)
        self._maybe_fail()
        if record is None:
            namespace = request.path_params["namespace"]
            raise HTTPException(404, f"Endpoint {namespace}/{name} not found")
        return record

    def _answer(self, request: Request, record: EndpointRecord) -> JSONResponse:
        malformed = self.world.roll(self.world.management.malformed_rate)
        return JSONResponse(self._render(record, base_url(request), self.world.now(), malformed))

    @staticmethod
    def _render(record: EndpointRecord, base: str, now: float, malformed: bool) -> dict[str, Any]:
        endpoint = render_endpoint(record, base, now)
        if malformed:
            del endpoint["status"]  # an answer huggingface_hub cannot parse
        return endpoint
