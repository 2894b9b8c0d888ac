"""The event volume page: events per day by source and by type, for a range of days and
one source or all, the same numbers as `GET /api/reports/volume`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from accord.accounts.service import source_names
from accord.analytics import service
from accord.analytics.pages.common import Window, events_by_day
from accord.core.clock import utcnow
from accord.web.auth import Caller, requires
from accord.web.state import State
from accord.web.ui import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Caller, Depends(requires("reports.read"))]

DEFAULT_DAYS = 30
# A year of days still reads as a chart and a table; longer ranges belong to the API.
MAX_DAYS = 366


def parse_day(text: str, field: str, problems: dict[str, str]) -> date | None:
    """The day typed in `field`, or None with the reason in `problems`."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        problems[field] = "must be a day as YYYY-MM-DD"
        return None


def window_of(
    since: str | None, until: str | None, *, today: date, problems: dict[str, str]
) -> Window:
    """The range asked for (the last 30 days when left out); what is wrong goes in `problems`
    and the default takes its place."""
    default = Window.last(DEFAULT_DAYS, today=today)
    first = parse_day(since, "since", problems) if since else default.since
    last = parse_day(until, "until", problems) if until else default.until
    if first is None or last is None:
        return default
    if first > last:
        problems["until"] = "must be on or after the first day"
        return default
    if (last - first).days + 1 > MAX_DAYS:
        problems["until"] = f"a range of at most {MAX_DAYS} days"
        return default
    return Window(first, last)


def _totals(rows: list[dict[str, Any]], column: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        totals[str(row[column])] = totals.get(str(row[column]), 0) + int(row["events"])
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


@router.get("/analytics/volume")
def volume_page(
    request: Request,
    state: State,
    caller: Reader,
    since: str | None = None,
    until: str | None = None,
    source: str | None = None,
) -> HTMLResponse:
    problems: dict[str, str] = {}
    window = window_of(since, until, today=utcnow().date(), problems=problems)
    with state.store.read() as conn:
        names = source_names(conn, business_id=caller.business_id)
    chosen = source or None
    if chosen is not None and chosen not in names:
        problems["source"] = "not a source of this business"
    form = {
        "since": since if since is not None else window.since.isoformat(),
        "until": until if until is not None else window.until.isoformat(),
        "source": source or "",
    }
    context: dict[str, Any] = {"form": form, "problems": problems, "sources": names}
    if problems:
        return render(
            request,
            "analytics/volume.html",
            caller=caller,
            status=400,
            error="Check the highlighted fields.",
            **context,
        )
    settings = state.settings
    rows = service.volume(
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
        since=window.since,
        until=window.until,
        source_id=chosen,
    )
    by_source = _totals(rows, "source_id")
    busiest = max(_totals(rows, "day").items(), key=lambda item: (item[1], item[0]), default=None)
    query = f"since={window.since}&until={window.until}" + (f"&source={chosen}" if chosen else "")
    return render(
        request,
        "analytics/volume.html",
        caller=caller,
        window=window,
        total=sum(int(r["events"]) for r in rows),
        busiest=busiest,
        by_source={names.get(key, key): n for key, n in by_source.items()},
        by_type=_totals(rows, "type"),
        source_chart=events_by_day(
            rows,
            window,
            by="source_id",
            names=names,
            title="Events per day by source",
            chart_id="volume-by-source",
        ),
        type_chart=events_by_day(
            rows, window, by="type", title="Events per day by type", chart_id="volume-by-type"
        ),
        api_path=f"/api/reports/volume?{query}",
        **context,
    )
