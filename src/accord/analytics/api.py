"""Admin API for reports: event volume, attribution, spend and saved reports."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from accord.accounts.service import campaign_names
from accord.analytics import funnels, reports, service, spend
from accord.analytics.attribution import AttributionSpec
from accord.analytics.reports import SavedReportIn
from accord.analytics.spend import SpendIn
from accord.core.clock import utcnow
from accord.engine.connection import connect
from accord.web.auth import Caller, requires
from accord.web.state import AppState, State

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


# Funnels, paths, retention, attribution, spend and saved reports (`/api/analytics`).
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
    "/funnels/people", summary="The profile ids reaching (or dropping after) one step of a funnel"
)
def funnel_people(
    state: State,
    caller: Analyst,
    body: Annotated[dict[str, Any], Body(examples=[FUNNEL_EXAMPLE])],
    step: Annotated[int, Query(ge=1, le=funnels.MAX_STEPS, description="1-based step")],
    dropped: Annotated[
        bool, Query(description="Only the people whose furthest step this is")
    ] = False,
) -> dict[str, Any]:
    settings = state.settings
    people = service.funnel_people(
        body,
        step,
        store=state.store,
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
        dropped=dropped,
    )
    return {"step": step, "dropped": dropped, "count": len(people), "profile_ids": people}


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


# -- attribution, spend and saved reports (`/api/analytics`) ----------------------------

AnalyticsReader = Analyst
AnalyticsManager = Annotated[Caller, Depends(requires("analytics.manage"))]


def run_attribution(state: AppState, business_id: str, spec: AttributionSpec) -> dict[str, Any]:
    """The attribution report of a spec on the configured engine (API, page and CLI)."""
    settings = state.settings
    with state.store.read() as conn:
        return service.attribution(
            conn,
            backend=connect(settings.engine_url),
            lake_url=settings.resolved_lake_url(),
            business_id=business_id,
            spec=spec,
        )


@analytics_router.post(
    "/attribution", summary="Conversions and acquisition cost per channel and campaign"
)
def attribution(spec: AttributionSpec, state: State, caller: AnalyticsReader) -> dict[str, Any]:
    return run_attribution(state, caller.business_id, spec)


@analytics_router.get("/spend", summary="Spend per day, channel and campaign, every source")
def list_spend(
    state: State,
    caller: AnalyticsReader,
    since: Annotated[date, Query(description="First UTC day (YYYY-MM-DD)")],
    until: Annotated[date, Query(description="Last UTC day, included")],
) -> list[dict[str, Any]]:
    service.check_range(since, until)
    settings = state.settings
    with state.store.read() as conn:
        lines = spend.stored(conn, business_id=caller.business_id, since=since, until=until)
        names = campaign_names(conn, business_id=caller.business_id)
    lines += spend.ad_log_lines(
        connect(settings.engine_url),
        settings.resolved_lake_url(),
        business_id=caller.business_id,
        since=since,
        until=until,
        campaign_names=names,
    )
    return [asdict(line) for line in sorted(lines, key=lambda line: (line.day, line.channel))]


@analytics_router.post("/spend", status_code=201, summary="Enter what a channel or campaign cost")
def add_spend(data: SpendIn, state: State, caller: AnalyticsManager) -> dict[str, str]:
    with state.store.write() as conn:
        return {"id": spend.add_entry(conn, business_id=caller.business_id, data=data)}


@analytics_router.delete("/spend/{entry_id}", status_code=204, summary="Remove a manual entry")
def delete_spend(entry_id: str, state: State, caller: AnalyticsManager) -> Response:
    with state.store.write() as conn:
        spend.delete_entry(conn, business_id=caller.business_id, entry_id=entry_id)
    return Response(status_code=204)


@analytics_router.get("/reports", summary="The dashboard's saved reports and their last results")
def list_reports(state: State, caller: AnalyticsReader) -> list[dict[str, Any]]:
    with state.store.read() as conn:
        return [asdict(r) for r in reports.list_reports(conn, business_id=caller.business_id)]


@analytics_router.post("/reports", status_code=201, summary="Save a report to the dashboard")
def save_report(data: SavedReportIn, state: State, caller: AnalyticsManager) -> dict[str, str]:
    with state.store.write() as conn:
        return {"id": reports.save(conn, business_id=caller.business_id, data=data)}


@analytics_router.get("/reports/{report_id}", summary="One saved report and its last result")
def get_report(report_id: str, state: State, caller: AnalyticsReader) -> dict[str, Any]:
    with state.store.read() as conn:
        return asdict(reports.get(conn, business_id=caller.business_id, report_id=report_id))


@analytics_router.post("/reports/{report_id}/refresh", summary="Run a saved report now")
def refresh_report(report_id: str, state: State, caller: AnalyticsManager) -> dict[str, Any]:
    return asdict(
        reports.refresh(report_inputs(state, caller.business_id), report_id=report_id, now=utcnow())
    )


@analytics_router.delete("/reports/{report_id}", status_code=204, summary="Remove a saved report")
def delete_report(report_id: str, state: State, caller: AnalyticsManager) -> Response:
    with state.store.write() as conn:
        reports.remove(conn, business_id=caller.business_id, report_id=report_id)
    return Response(status_code=204)


def report_inputs(state: AppState, business_id: str) -> reports.ReportInputs:
    settings = state.settings
    return reports.ReportInputs(
        store=state.store,
        backend=connect(settings.engine_url),
        lake_url=settings.resolved_lake_url(),
        business_id=business_id,
        today=utcnow().date(),
    )
