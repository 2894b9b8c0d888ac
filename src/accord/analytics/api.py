"""Admin API for reports."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from accord.analytics import service
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api/reports", tags=["reports"])


@router.get("/volume", summary="Events per day, source and type")
def volume(
    state: State,
    caller: Annotated[Caller, Depends(requires("reports.read"))],
    since: Annotated[date | None, Query(description="First UTC day (YYYY-MM-DD)")] = None,
    until: Annotated[date | None, Query(description="Last UTC day, included")] = None,
    source: Annotated[
        str | None, Query(max_length=40, description="Only this source (pixel) id")
    ] = None,
) -> list[dict[str, Any]]:
    settings = state.settings
    return service.volume(
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
        since=since,
        until=until,
        source_id=source or None,
    )
