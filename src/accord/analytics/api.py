"""Admin API for reports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header
from starlette.concurrency import run_in_threadpool

from accord.accounts.service import business_for_token
from accord.analytics import service
from accord.web.state import State

router = APIRouter(prefix="/api/reports", tags=["reports"])


@router.get("/volume", summary="Events per day, source and type")
async def volume(
    state: State,
    authorization: str | None = Header(default=None, description="Bearer <admin token>"),
) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        business_id = business_for_token(state.store, authorization)
        settings = state.settings
        return service.volume(
            engine_url=settings.engine_url,
            lake_url=settings.resolved_lake_url(),
            business_id=business_id,
        )

    return await run_in_threadpool(work)
