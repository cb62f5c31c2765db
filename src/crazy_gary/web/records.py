"""The audit log and the costs (README, "State, audit log, costs, metrics"), role viewer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from crazy_gary.recorder import Recorder, total
from crazy_gary.store.base import AuditQuery
from crazy_gary.web.auth import Caller, require

__all__ = ["router"]

router = APIRouter(tags=["records"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _recorder(request: Request) -> Recorder:
    recorder: Recorder = request.app.state.recorder
    return recorder


@router.get("/api/endpoints/audit")
async def audit(
    request: Request,
    caller: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="an entry id: only older entries")
    ] = None,
    model_type: Annotated[str | None, Query(pattern=_NAME)] = None,
    operation: Annotated[str | None, Query(pattern=r"^[a-z_-]{1,32}$")] = None,
) -> dict[str, Any]:
    """Wakes, sleeps, auto-sleeps, refused attempts and observed state changes, newest first."""
    query = AuditQuery(limit=limit, before=before, model_type=model_type, operation=operation)
    entries = await _recorder(request).audit(query)
    return {"success": True, "entries": [entry.to_dict() for entry in entries]}


@router.get("/api/endpoints/costs")
async def costs(request: Request, caller: Viewer) -> dict[str, Any]:
    """Per endpoint, in US dollars: cost so far, saved against always-on, the month at the last day's rate."""
    reports = _recorder(request).costs()
    return {
        "success": True,
        "endpoints": {key: report.to_dict() for key, report in reports.items()},
        "total": total(reports),
    }
