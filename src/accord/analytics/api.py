"""Admin API for reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from accord.analytics import service
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api/reports", tags=["reports"])


@router.get("/volume", summary="Events per day, source and type")
def volume(
    state: State,
    caller: Annotated[Caller, Depends(requires("reports.read"))],
) -> list[dict[str, Any]]:
    settings = state.settings
    return service.volume(
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
    )
