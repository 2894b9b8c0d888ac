"""The business overview (`/app`): who you are in the business, your assets, and for each
area you may see, its numbers of the last 30 days as KPI tiles and a chart.

Each widget reads its numbers through its context's service in one read, and only when
the caller holds that area's permission: an employee sees the areas their tasks grant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from accord.accounts import assets as asset_service
from accord.accounts import service as accounts
from accord.analytics import service as analytics
from accord.analytics.pages.common import Window, events_by_day
from accord.audiences import definitions
from accord.consent import service as consent
from accord.core.clock import utcnow
from accord.journeys import analytics as journeys
from accord.messaging import kpis as email
from accord.process import job_admin
from accord.profiles import service as profiles
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Format, Series, format_value
from accord.web.state import AppState, State
from accord.web.ui import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Caller, Depends(requires("assets.read"))]

WINDOW_DAYS = 30


@dataclass(frozen=True)
class Tile:
    """One KPI tile: a number and what it counts."""

    value: str
    label: str
    id: str = ""


@dataclass(frozen=True)
class Widget:
    """One area's card on the overview: tiles, a chart with its table, a link for more."""

    key: str
    title: str
    tiles: list[Tile]
    chart: Chart
    link: str = ""
    link_label: str = ""
    wide: bool = False
    notes: list[str] = field(default_factory=list)


def _tile(value: float | int | None, label: str, fmt: Format = "number", id: str = "") -> Tile:
    return Tile(format_value(value, fmt), label, id)


def events_widget(state: AppState, business_id: str, window: Window) -> Widget:
    settings = state.settings
    with state.store.read() as conn:
        names = accounts.source_names(conn, business_id=business_id)
    rows = analytics.volume(
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=business_id,
        since=window.since,
        until=window.until,
    )
    total = sum(int(row["events"]) for row in rows)
    sending = {row["source_id"] for row in rows}
    return Widget(
        key="events",
        title="Events",
        tiles=[
            _tile(total, "events, last 30 days", id="kpi-events"),
            _tile(len(sending), "sources sending"),
        ],
        chart=events_by_day(
            rows,
            window,
            by="source_id",
            names=names,
            title="Events per day by source",
            chart_id="chart-events",
        ),
        link="/analytics/volume",
        link_label="Event volume by source and type",
        wide=True,
    )


def profiles_widget(state: AppState, business_id: str, window: Window) -> Widget:
    with state.store.read() as conn:
        counts = profiles.known_and_anonymous(conn, business_id=business_id)
    return Widget(
        key="profiles",
        title="Profiles",
        tiles=[
            _tile(counts.total, "profiles", id="kpi-profiles"),
            _tile(counts.known / counts.total if counts.total else None, "known", "percent"),
        ],
        chart=Chart(
            title="Known and anonymous profiles",
            x=["known", "anonymous"],
            series=[Series("profiles", [counts.known, counts.anonymous])] if counts.total else [],
            kind="pie",
            x_title="profiles",
            id="chart-profiles",
        ),
        notes=["Known: the profile holds a user id, an email, a phone or a custom id."],
    )


def consent_widget(state: AppState, business_id: str, window: Window) -> Widget:
    rows = consent.opt_in_report(
        state.store, business_id=business_id, by="day", engine_url=state.settings.engine_url
    )
    first, last = window.since.isoformat(), window.until.isoformat()
    decisions: dict[str, int] = {}
    granted: dict[str, int] = {}
    for row in rows:
        if first <= str(row["day"]) <= last:
            purpose = str(row["purpose"])
            decisions[purpose] = decisions.get(purpose, 0) + int(row["decisions"])
            granted[purpose] = granted.get(purpose, 0) + int(row["granted"])
    purposes = sorted(decisions)
    total, yes = sum(decisions.values()), sum(granted.values())
    return Widget(
        key="consent",
        title="Consent",
        tiles=[
            _tile(total, "consent decisions, last 30 days"),
            _tile(yes / total if total else None, "opt-in rate", "percent", id="kpi-opt-in"),
        ],
        chart=Chart(
            title="Opt-in rate by purpose, last 30 days",
            x=purposes,
            series=[Series("opt-in rate", [granted[p] / decisions[p] for p in purposes])],
            kind="bar",
            fmt="percent",
            x_title="purpose",
            y_title="opt-in rate",
            id="chart-consent",
        ),
        notes=["One decision per purpose of each consent record (necessary left out)."],
    )


def audiences_widget(state: AppState, business_id: str, window: Window) -> Widget:
    with state.store.read() as conn:
        found = definitions.list_audiences(conn, business_id=business_id)
    sized = sorted((a for a in found if a.size is not None), key=lambda a: (-(a.size or 0), a.name))
    return Widget(
        key="audiences",
        title="Audiences",
        tiles=[
            _tile(len(found), "audiences", id="kpi-audiences"),
            _tile(sum(1 for a in found if a.size is None), "not computed yet"),
        ],
        chart=Chart(
            title="Audience sizes",
            x=[a.name for a in sized],
            series=[Series("people", [a.size for a in sized])],
            kind="hbar",
            x_title="audience",
            y_title="people",
            # One readable bar per audience, however many the business has.
            height=max(280, 22 * len(sized) + 80),
            id="chart-audiences",
        ),
        link="/audiences",
        link_label="Audiences",
        wide=True,
        notes=["Sizes as of each audience's last refresh."],
    )


def email_widget(state: AppState, business_id: str, window: Window) -> Widget:
    with state.store.read() as conn:
        kpis = email.kpis_between(
            conn, business_id=business_id, since=window.start, until=window.end
        )
    steps = {
        "sent": kpis.sent,
        "delivered": kpis.delivered,
        "opened": kpis.human_openers,
        "clicked": kpis.clickers,
        "bounced": kpis.bounces,
        "unsubscribed": kpis.unsubscribes,
        "complained": kpis.complaints,
    }
    return Widget(
        key="email",
        title="Email",
        tiles=[
            _tile(kpis.sent, "campaign emails sent, last 30 days", id="kpi-email-sent"),
            _tile(kpis.rates["open_rate"].value, "open rate", "percent"),
            _tile(kpis.rates["click_through_rate"].value, "click-through rate", "percent"),
        ],
        chart=Chart(
            title="Campaign emails, last 30 days",
            x=list(steps),
            series=[Series("messages", list(steps.values()))] if kpis.sent else [],
            kind="bar",
            x_title="outcome",
            y_title="messages",
            id="chart-email",
        ),
        link="/email/performance",
        link_label="Email over time",
        notes=["Opened and clicked count people, machine opens left out."],
    )


def journeys_widget(state: AppState, business_id: str, window: Window) -> Widget:
    with state.store.read() as conn:
        found = journeys.conversions(conn, business_id=business_id, since=window.start)
    entered = sum(j.entered for j in found)
    converted = sum(j.converted for j in found)
    return Widget(
        key="journeys",
        title="Journeys",
        tiles=[
            _tile(entered, "journey entries, last 30 days", id="kpi-journey-entries"),
            _tile(converted, "conversions"),
            _tile(converted / entered if entered else None, "conversion rate", "percent"),
        ],
        chart=Chart(
            title="Journey entries and conversions, last 30 days",
            x=[j.name for j in found],
            series=[
                Series("entered", [j.entered for j in found]),
                Series("converted", [j.converted for j in found]),
            ]
            if entered
            else [],
            kind="bar",
            x_title="journey",
            y_title="people",
            id="chart-journeys",
        ),
        link="/journeys",
        link_label="Journeys",
    )


def _last_line(error: str) -> str:
    """A stored error is a traceback: its last line says what went wrong."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def jobs_widget(state: AppState, business_id: str, window: Window) -> Widget:
    with state.store.read() as conn:
        outcomes = job_admin.outcomes(conn, business_id=business_id, since=window.start)
        failures = job_admin.failed_runs(conn, business_id=business_id, since=window.start)
    statuses = sorted({status for counts in outcomes.values() for status in counts})
    failed = sum(
        n
        for counts in outcomes.values()
        for status, n in counts.items()
        if status in job_admin.FAILED_STATUSES
    )
    return Widget(
        key="jobs",
        title="Jobs",
        tiles=[
            _tile(sum(sum(c.values()) for c in outcomes.values()), "job runs, last 30 days"),
            _tile(failed, "runs failed, timed out or lost", id="kpi-failed-jobs"),
        ],
        chart=Chart(
            title="Job runs by outcome, last 30 days",
            x=list(outcomes),
            series=[Series(s, [outcomes[name].get(s, 0) for name in outcomes]) for s in statuses],
            kind="stacked",
            x_title="job",
            y_title="runs",
            id="chart-jobs",
        ),
        link="/jobs",
        link_label="Jobs",
        notes=[
            f"{run.name} {run.status} at {run.started_at:%Y-%m-%d %H:%M} UTC"
            + (f": {_last_line(run.error)}" if run.error else "")
            for run in failures
        ],
    )


# Each area's widget and the permission that shows it, in the order of the page.
WIDGETS: list[tuple[str, Callable[[AppState, str, Window], Widget]]] = [
    ("reports.read", events_widget),
    ("audiences.read", audiences_widget),
    ("profiles.read", profiles_widget),
    ("consent.read", consent_widget),
    ("email.read", email_widget),
    ("journeys.read", journeys_widget),
    ("jobs.read", jobs_widget),
]


@router.get("/app")
def overview(request: Request, state: State, caller: Reader) -> HTMLResponse:
    window = Window.last(WINDOW_DAYS, today=utcnow().date())
    with state.store.read() as conn:
        business = accounts.get_business(conn, business_id=caller.business_id)
        assets = asset_service.asset_views(
            conn, rows=accounts.visible_assets(conn, access=caller.access)
        )
    widgets = [
        widget(state, caller.business_id, window)
        for permission, widget in WIDGETS
        if caller.can(permission)
    ]
    context: dict[str, Any] = {
        "business": business,
        "assets": assets,
        "role": caller.role,
        "window": window,
        "widgets": widgets,
        # Each area's headline number on top; its other tiles stay in its card.
        "headlines": [widget.tiles[0] for widget in widgets],
    }
    return render(request, "overview/app.html", caller=caller, **context)
