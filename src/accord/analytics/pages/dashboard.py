"""The dashboard (`/analytics/dashboard`): each saved report's chart, drawn from the
result its last refresh stored (the `analytics.reports` job refreshes them every hour)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from accord.analytics import reports
from accord.analytics.api import report_inputs
from accord.analytics.pages.attribution import attribution_charts
from accord.analytics.pages.reports import funnel_chart, path_chart, retention_charts
from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.web.auth import Caller, requires
from accord.web.charts import Chart
from accord.web.state import State
from accord.web.ui import redirect, render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Caller, Depends(requires("analytics.read"))]
Manager = Annotated[Caller, Depends(requires("analytics.manage"))]

# How each kind of saved report is drawn from its stored result (one line per kind).
CHARTS: dict[str, Callable[[Mapping[str, Any], str], list[Chart]]] = {
    "attribution": lambda result, prefix: attribution_charts(result, prefix=prefix),
    "funnels": lambda result, prefix: _ids([funnel_chart(result)], prefix),
    "paths": lambda result, prefix: _ids([path_chart(result)], prefix),
    "retention": lambda result, prefix: _ids(list(retention_charts(result)), prefix),
}


def _ids(charts: list[Chart], prefix: str) -> list[Chart]:
    """The page's charts with ids of their own on the dashboard (one report among others)."""
    return [replace(chart, id=f"{prefix}-{chart.id}") for chart in charts]


@dataclass
class Card:
    report: reports.SavedReport
    charts: list[Chart]
    last_error: str


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


@router.get("/analytics/dashboard")
def dashboard(request: Request, state: State, caller: Reader) -> HTMLResponse:
    with state.store.read() as conn:
        found = reports.list_reports(conn, business_id=caller.business_id)
    cards = []
    for report in found:
        draw = CHARTS.get(report.kind)
        charts = draw(report.result, report.id) if draw and report.result else []
        cards.append(Card(report, charts, _last_line(report.error)))
    return render(
        request,
        "analytics/dashboard.html",
        caller=caller,
        cards=cards,
        kinds={name: kind.title for name, kind in reports.KINDS.items()},
    )


@router.post("/analytics/dashboard/{report_id}/refresh")
def refresh(request: Request, report_id: str, state: State, caller: Manager) -> Response:
    try:
        report = reports.refresh(
            report_inputs(state, caller.business_id), report_id=report_id, now=utcnow()
        )
    except NotFound:
        return redirect(request, "/analytics/dashboard", error="No such saved report")
    if report.error:
        return redirect(
            request, "/analytics/dashboard", error=f"{report.name}: {_last_line(report.error)}"
        )
    return redirect(request, "/analytics/dashboard", notice=f"{report.name} refreshed")


@router.post("/analytics/dashboard/{report_id}/delete")
def delete(request: Request, report_id: str, state: State, caller: Manager) -> Response:
    try:
        with state.store.write() as conn:
            reports.remove(conn, business_id=caller.business_id, report_id=report_id)
    except NotFound:
        return redirect(request, "/analytics/dashboard", error="No such saved report")
    return redirect(request, "/analytics/dashboard", notice="Report removed")
