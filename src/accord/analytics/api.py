"""Admin API for reports."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from accord.analytics import funnels, service
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


analytics_router = APIRouter(prefix="/api/analytics", tags=["analytics"])
Analyst = Annotated[Caller, Depends(requires("analytics.read"))]
FUNNEL_EXAMPLE = {
    "steps": [
        {"event": "Product Viewed"},
        {"event": "Product Added"},
        {"event": "Order Completed", "where": [{"property": "revenue", "op": ">=", "value": 50}]},
    ],
    "window_seconds": 604800,
    "from": "2026-11-01",
    "to": "2026-12-01",
}


def _run(state: State, caller: Caller, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    settings = state.settings
    return service.run_report(
        kind,
        body,
        store=state.store,
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
    )


@analytics_router.post("/funnels", summary="A funnel: people reaching each step in order")
def funnel(
    state: State,
    caller: Analyst,
    body: Annotated[dict[str, Any], Body(examples=[FUNNEL_EXAMPLE])],
) -> dict[str, Any]:
    return _run(state, caller, "funnels", body)


@analytics_router.post(
    "/funnels/people", summary="The profile ids reaching at least one step of a funnel"
)
def funnel_people(
    state: State,
    caller: Analyst,
    body: Annotated[dict[str, Any], Body(examples=[FUNNEL_EXAMPLE])],
    step: Annotated[int, Query(ge=1, le=funnels.MAX_STEPS, description="1-based step")],
) -> dict[str, Any]:
    settings = state.settings
    people = service.funnel_people(
        body,
        step,
        store=state.store,
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
    )
    return {"step": step, "count": len(people), "profile_ids": people}


@analytics_router.post("/paths", summary="The events people do next after (or before) one")
def path(
    state: State,
    caller: Analyst,
    body: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {"step": {"event": "Product Viewed"}, "from": "2026-11-01", "to": "2026-12-01"}
            ]
        ),
    ],
) -> dict[str, Any]:
    return _run(state, caller, "paths", body)


@analytics_router.post("/retention", summary="Cohorts by first period and their returns")
def retained(
    state: State,
    caller: Analyst,
    body: Annotated[
        dict[str, Any],
        Body(
            examples=[{"period": "week", "periods": 12, "from": "2026-09-01", "to": "2026-12-01"}]
        ),
    ],
) -> dict[str, Any]:
    return _run(state, caller, "retention", body)
