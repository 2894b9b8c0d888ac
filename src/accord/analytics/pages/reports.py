"""The funnel, path and retention pages: a form whose fields are the report's spec (steps
written in the audience language), the chart, and a table of the same numbers as the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import ValidationError

from accord.analytics import reports, service
from accord.analytics.people import Step
from accord.audiences.conditions import EventCondition
from accord.audiences.text import parse as parse_text
from accord.audiences.text import render_condition
from accord.core.clock import utcnow
from accord.core.errors import InvalidInput
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import redirect, render

router = APIRouter(include_in_schema=False)
Analyst = Annotated[Caller, Depends(requires("analytics.read"))]
Manager = Annotated[Caller, Depends(requires("analytics.manage"))]
DEFAULT_DAYS = 30
STEP_FIELDS = 5


def _step(text: str, field: str, problems: dict[str, str]) -> dict[str, Any] | None:
    """A step typed as an event clause of the audience language:
    `"Product Viewed" where category = "jackets"`."""
    try:
        definition = parse_text(f"did {text.strip()}", field=field)
    except InvalidInput as exc:
        problems[field] = exc.problems[0].reason
        return None
    condition = definition.condition
    if not isinstance(condition, EventCondition) or condition.window or condition.count.value != 1:
        problems[field] = 'one event with optional filters: "Product Viewed" where category = "x"'
        return None
    return Step(event=condition.event, where=condition.where).model_dump(mode="json")


def _step_text(step: Step) -> str:
    """A step as the form takes it: the event clause of the audience language."""
    return render_condition(step.condition()).removeprefix("did ")


def _instant_text(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.date().isoformat() if value.time() == time() else value.isoformat()


def builder_query(kind: str, spec: Mapping[str, Any], today: date) -> dict[str, Any] | None:
    """The query of the builder page (`/analytics/{kind}`) that shows the report of a saved
    spec, over its latest days counted from `today` when it has `last_days`; None when the
    spec says what the form cannot (named steps, exclusions) or is no longer valid."""
    try:
        parsed = service.REPORTS[kind].parse(reports.dated(spec, today, to_excluded=True))
    except InvalidInput:
        return None
    dates = {"from": _instant_text(parsed.from_), "to": _instant_text(parsed.to)}
    if kind == "funnels":
        if parsed.exclusions or any(step.name for step in parsed.steps):
            return None
        return {
            "step": [_step_text(step) for step in parsed.steps],
            "window_hours": f"{parsed.window_seconds / 3600:g}",
            **dates,
            "breakdown": parsed.breakdown or "",
            "breakdown_trait": parsed.breakdown_trait or "",
        }
    if kind == "paths":
        if parsed.step.name:
            return None
        return {
            "step": _step_text(parsed.step),
            "direction": parsed.direction,
            "depth": str(parsed.depth),
            "width": str(parsed.width),
            **dates,
        }
    events = {f: getattr(parsed, f) for f in ("cohort_event", "return_event")}
    if any(step is not None and step.name for step in events.values()):
        return None
    return {
        **{f: "" if step is None else _step_text(step) for f, step in events.items()},
        "period": parsed.period,
        "periods": str(parsed.periods),
        **dates,
        "show": "1",
    }


EXAMPLE_NOTES = {
    "funnels": "the event names of the Segment e-commerce spec",
    "paths": "the event names of the Segment e-commerce spec",
    "retention": "any event",
}


def _starting_points(state: State, caller: Caller, kind: str) -> dict[str, Any]:
    """What the builder offers before a report is asked: the business's saved reports of
    the kind, each a link that draws it, and an example."""
    today = utcnow().date()
    with state.store.read() as conn:
        found = reports.list_reports(conn, business_id=caller.business_id)
    path = f"/analytics/{kind}"

    def link(spec: Mapping[str, Any]) -> str | None:
        query = builder_query(kind, spec, today)
        if query is None:
            return None
        return f"{path}?{urlencode({k: v for k, v in query.items() if v}, doseq=True)}"

    example = reports.examples(DEFAULT_DAYS)[kind]
    return {
        "saved": [{"name": r.name, "href": link(r.spec)} for r in found if r.kind == kind],
        "example": {
            "name": example.name,
            "href": link(example.spec),
            "note": EXAMPLE_NOTES[kind],
            "days": DEFAULT_DAYS,
        },
    }


def _range(start: str | None, end: str | None) -> tuple[str, str]:
    today = utcnow().date()
    return (
        start or (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        end or (today + timedelta(days=1)).isoformat(),
    )


def _problems_of(exc: InvalidInput, names: dict[str, str]) -> dict[str, str]:
    """The API's field names as the form's."""
    out: dict[str, str] = {}
    for problem in exc.problems:
        key = next((form for api, form in names.items() if problem.field.startswith(api)), "")
        out.setdefault(key or "form", f"{problem.field}: {problem.reason}")
    return out


def _run(state: State, caller: Caller, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    settings = state.settings
    return service.run_report(
        kind,
        spec,
        store=state.store,
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
    )


def _page(
    request: Request,
    caller: Caller,
    template: str,
    problems: dict[str, str],
    spec: dict[str, Any] | None,
    **context: Any,
) -> HTMLResponse:
    return render(
        request,
        template,
        caller=caller,
        status=400 if problems else 200,
        error="Check the highlighted fields." if problems else None,
        problems=problems,
        spec_json=orjson.dumps(spec, option=orjson.OPT_INDENT_2).decode() if spec else "",
        **context,
    )


def funnel_chart(result: Mapping[str, Any]) -> Chart:
    steps = result["steps"]
    return Chart(
        title="People reaching each step",
        x=[f"{i + 1}. {s['name']}" for i, s in enumerate(steps)],
        series=[Series("people", [s["count"] for s in steps])],
        kind="bar",
        x_title="step",
        y_title="people",
        id="funnel-chart",
    )


@dataclass(frozen=True)
class FunnelForm:
    """The funnel page's query: what the form shows, the spec it asks (None until steps are
    typed or while a field is wrong), the problems by form field, and the API's field
    names as the form's."""

    form: dict[str, Any]
    spec: dict[str, Any] | None
    problems: dict[str, str]
    names: dict[str, str]


def funnel_form(
    step: Annotated[list[str] | None, Query(max_length=20)] = None,
    window_hours: str = "168",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    breakdown: str = "",
    breakdown_trait: str = "",
) -> FunnelForm:
    typed = [s for s in (step or []) if s.strip()]
    first, last = _range(start, end)
    form = {
        "steps": typed + [""] * max(0, STEP_FIELDS - len(typed)),
        "window_hours": window_hours,
        "from": first,
        "to": last,
        "breakdown": breakdown,
        "breakdown_trait": breakdown_trait,
    }
    names = {f"steps[{i}]": f"step{i}" for i in range(len(typed))}
    names |= {"window_seconds": "window_hours", "from": "from", "to": "to"}
    # The longer name first: `breakdown` is its prefix.
    names |= {"breakdown_trait": "breakdown_trait", "breakdown": "breakdown"}
    problems: dict[str, str] = {}
    if not typed:
        return FunnelForm(form, None, problems, names)
    steps = [_step(text, f"step{i}", problems) for i, text in enumerate(typed)]
    try:
        hours = float(window_hours)
    except ValueError:
        problems["window_hours"] = "must be a number of hours"
        hours = 0
    if problems:
        return FunnelForm(form, None, problems, names)
    spec: dict[str, Any] = {
        "steps": steps,
        "window_seconds": round(hours * 3600),
        "from": first,
        "to": last,
    }
    if breakdown.strip():
        spec["breakdown"] = breakdown.strip()
    if breakdown_trait.strip():
        spec["breakdown_trait"] = breakdown_trait.strip()
    return FunnelForm(form, spec, problems, names)


@router.get("/analytics/funnels")
def funnels_page(
    request: Request,
    state: State,
    caller: Analyst,
    asked: Annotated[FunnelForm, Depends(funnel_form)],
) -> HTMLResponse:
    context: dict[str, Any] = {"form": asked.form, "result": None, "chart": None}
    template = "analytics/funnels.html"
    if asked.spec is None:
        if not asked.problems:
            context |= _starting_points(state, caller, "funnels")
        return _page(request, caller, template, asked.problems, None, **context)
    try:
        result = _run(state, caller, "funnels", asked.spec)
    except InvalidInput as exc:
        problems = _problems_of(exc, asked.names)
        return _page(request, caller, template, problems, asked.spec, **context)
    context |= {
        "result": result,
        "chart": funnel_chart(result),
        "people_href": f"/analytics/funnels/people.csv?{request.url.query}",
    }
    return _page(request, caller, template, {}, asked.spec, **context)


@router.get("/analytics/funnels/people.csv")
def funnel_people_csv(
    state: State,
    caller: Analyst,
    asked: Annotated[FunnelForm, Depends(funnel_form)],
    people_step: Annotated[int, Query(ge=1, le=20)],
    dropped: bool = False,
) -> Response:
    """The profile ids of one step of the page's funnel (reaching it, or stopping there),
    one a line under a `profile_id` header."""
    if asked.spec is None:
        reasons = asked.problems or {"step": "type the funnel's steps"}
        return PlainTextResponse(
            "".join(f"{field}: {reason}\n" for field, reason in reasons.items()), status_code=400
        )
    settings = state.settings
    ids = service.funnel_people(
        asked.spec,
        people_step,
        store=state.store,
        engine_url=settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=caller.business_id,
        dropped=dropped,
    )
    name = f"funnel-step-{people_step}{'-dropped' if dropped else ''}.csv"
    return Response(
        "".join(f"{line}\r\n" for line in ["profile_id", *ids]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def path_chart(result: Mapping[str, Any]) -> Chart:
    def node(position: int, event: str) -> str:
        return f"{position:+d} {event}" if position else f"0 {event}"

    links = result["links"]
    return Chart(
        title="Where people go",
        x=[
            f"{node(x['source_position'], x['source'])} → {node(x['target_position'], x['target'])}"
            for x in links
        ],
        series=[Series("people", [x["people"] for x in links])],
        links=[
            (node(x["source_position"], x["source"]), node(x["target_position"], x["target"]))
            for x in links
        ],
        kind="sankey",
        x_title="from → to",
        height=420,
        id="paths-chart",
    )


@router.get("/analytics/paths")
def paths_page(
    request: Request,
    state: State,
    caller: Analyst,
    step: str = "",
    direction: str = "after",
    depth: str = "3",
    width: str = "5",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> HTMLResponse:
    first, last = _range(start, end)
    form = {"step": step, "direction": direction, "depth": depth, "width": width}
    form |= {"from": first, "to": last}
    context: dict[str, Any] = {"form": form, "result": None, "chart": None}
    if not step.strip():
        context |= _starting_points(state, caller, "paths")
        return _page(request, caller, "analytics/paths.html", {}, None, **context)
    problems: dict[str, str] = {}
    anchor = _step(step, "step", problems)
    if problems:
        return _page(request, caller, "analytics/paths.html", problems, None, **context)
    spec = {"step": anchor, "direction": direction, "depth": depth, "width": width}
    spec |= {"from": first, "to": last}
    names = {k: k for k in ("step", "direction", "depth", "width", "from", "to")}
    try:
        result = _run(state, caller, "paths", spec)
    except InvalidInput as exc:
        return _page(
            request, caller, "analytics/paths.html", _problems_of(exc, names), spec, **context
        )
    context |= {"result": result, "chart": path_chart(result)}
    return _page(request, caller, "analytics/paths.html", {}, spec, **context)


def retention_charts(result: Mapping[str, Any]) -> tuple[Chart, Chart]:
    cohorts = result["cohorts"]
    periods = len(result["curve"])
    labels = [f"{result['period']} {p}" for p in range(1, periods + 1)]
    triangle = Chart(
        title="Share of each cohort returning",
        x=labels,
        series=[
            Series(
                f"{c['start']} ({c['people']:,})",
                [None if n is None or not c["people"] else n / c["people"] for n in c["returned"]],
            )
            for c in cohorts
        ],
        kind="heatmap",
        fmt="percent",
        y_title="cohort (people)",
        height=max(200, 28 * len(cohorts) + 80),
        id="retention-triangle",
    )
    curve = Chart(
        title="Retention curve (all cohorts)",
        x=labels,
        series=[Series("returning", result["curve"])],
        kind="line",
        fmt="percent",
        x_title="period after the cohort's",
        id="retention-curve",
    )
    return triangle, curve


@router.get("/analytics/retention")
def retention_page(
    request: Request,
    state: State,
    caller: Analyst,
    cohort_event: str = "",
    return_event: str = "",
    period: str = "week",
    periods: str = "12",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    show: str = "",
) -> HTMLResponse:
    today = utcnow().date()
    first = start or (today - timedelta(weeks=12)).isoformat()
    last = end or (today + timedelta(days=1)).isoformat()
    form = {"cohort_event": cohort_event, "return_event": return_event, "period": period}
    form |= {"periods": periods, "from": first, "to": last}
    context: dict[str, Any] = {"form": form, "result": None, "triangle": None, "curve": None}
    if not show:
        context |= _starting_points(state, caller, "retention")
        return _page(request, caller, "analytics/retention.html", {}, None, **context)
    problems: dict[str, str] = {}
    spec: dict[str, Any] = {"period": period, "periods": periods, "from": first, "to": last}
    for field, text in (("cohort_event", cohort_event), ("return_event", return_event)):
        if text.strip():
            spec[field] = _step(text, field, problems)
    if problems:
        return _page(request, caller, "analytics/retention.html", problems, None, **context)
    names = {k: k for k in ("cohort_event", "return_event", "period", "periods", "from", "to")}
    try:
        result = _run(state, caller, "retention", spec)
    except InvalidInput as exc:
        return _page(
            request, caller, "analytics/retention.html", _problems_of(exc, names), spec, **context
        )
    triangle, curve = retention_charts(result)
    context |= {"result": result, "triangle": triangle, "curve": curve}
    return _page(request, caller, "analytics/retention.html", {}, spec, **context)


SAVE_TITLES = {"funnels": "Funnel", "paths": "Paths", "retention": "Retention"}


@router.post("/analytics/funnels/save")
@router.post("/analytics/paths/save")
@router.post("/analytics/retention/save")
def save_report(
    request: Request,
    state: State,
    caller: Manager,
    spec: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    last_days: Annotated[str, Form()] = "",
) -> Response:
    """Save the funnel, paths or retention report shown to the dashboard: the shown spec,
    over the latest `last_days` days when given (else its own from and to)."""
    kind = request.url.path.split("/")[2]
    try:
        values = orjson.loads(spec)
        if not isinstance(values, dict):
            raise ValueError("the spec must be a JSON object")
        if last_days.strip():
            values = {k: v for k, v in values.items() if k not in ("from", "to")}
            values["last_days"] = int(last_days)
        data = reports.SavedReportIn(kind=kind, name=name.strip() or SAVE_TITLES[kind], spec=values)
        with state.store.write() as conn:
            reports.save(conn, business_id=caller.business_id, data=data)
    except (ValueError, ValidationError, InvalidInput) as exc:
        return redirect(request, f"/analytics/{kind}", error=f"Not saved: {exc}"[:300])
    return redirect(request, "/analytics/dashboard", notice=f"{data.name} saved to the dashboard")
