"""`GET /metrics` (role viewer): the app's Prometheus metrics in the text exposition format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from crazy_gary.metrics import Metrics
from crazy_gary.web.auth import Caller, require

__all__ = ["router"]

router = APIRouter(tags=["observability"])
Viewer = Annotated[Caller, Depends(require("viewer"))]


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
)
async def metrics(request: Request, caller: Viewer) -> Response:
    """Endpoint states, operations, requests, latencies, breakers and costs, for Prometheus to scrape."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
