"""Admin API for reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from accord.analytics import service
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api/reports", tags=["reports"])


@router.get("/volume", summary="Events per day, source and type")
async def volume(
    state: State,
    caller: Annotated[Caller, Depends(requires("reports.read"))],
) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        settings = state.settings
        return service.volume(
            engine_url=settings.engine_url,
            lake_url=settings.resolved_lake_url(),
            business_id=caller.business_id,
        )

    return await run_in_threadpool(work)
