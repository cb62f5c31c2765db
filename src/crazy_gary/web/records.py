"""The audit log, the costs and the usage (README, "State, audit log, costs, metrics"), role viewer."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from crazy_gary.recorder import Recorder, total
from crazy_gary.store.base import AuditQuery
from crazy_gary.usage.attribution import attribute
from crazy_gary.usage.quotas import Quotas
from crazy_gary.web.auth import Caller, require
from crazy_gary.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["records"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DAY = 86_400.0
HOUR = 3600


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


@router.get("/api/usage")
async def usage(
    request: Request,
    caller: Viewer,
    since: Annotated[
        float | None, Query(ge=0, le=1e11, description="Unix seconds; default: a day before until")
    ] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="Unix seconds; default: now")] = None,
) -> dict[str, Any]:
    """Tokens and each key's share of each endpoint's cost in the period (the idle cost under key
    null), and the quotas; operators see every key, other keys only their own rows and quota."""
    now = request.app.state.clock.now()
    # by whole hours, as usage is kept: since down to its hour, until up to its (or now)
    end = now if until is None else min(now, math.ceil(until / HOUR) * HOUR)
    start = (end - DAY if since is None else since) // HOUR * HOUR
    if start >= end:
        raise ApiError(400, "invalid_request", "'since' must be before 'until' (and before now).")
    recorder = _recorder(request)
    rows = attribute(await recorder.usage_rows(start, end), recorder.costs_between(start, end))
    quotas: Quotas = request.app.state.quotas
    if caller.role == "operator":
        keys = sorted(quotas.limits)
    else:
        rows = [row for row in rows if row["key"] == caller.actor]
        keys = [caller.actor] if quotas.applies(caller.actor) else []
    return {
        "success": True,
        "since": int(start),
        "until": int(end),
        "rows": rows,
        "quotas": await quotas.report(keys),
    }
