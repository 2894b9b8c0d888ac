"""The attribution page: conversions, new customers and cost per acquired customer per
channel and campaign for a model, a conversion event, a lookback and a range of days, the
same numbers as `POST /api/analytics/attribution`; a report can be saved to the dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from accord.analytics import reports
from accord.analytics.api import run_attribution
from accord.analytics.attribution import MODELS, AttributionSpec
from accord.analytics.attribution import check as check_spec
from accord.core.clock import utcnow
from accord.core.errors import InvalidInput
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import redirect, render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Caller, Depends(requires("analytics.read"))]
Manager = Annotated[Caller, Depends(requires("analytics.manage"))]

DEFAULT_DAYS = 30
# The spec's fields as the form names them.
FIELDS = {
    "model": "model",
    "conversion_event": "event",
    "lookback_days": "lookback",
    "from": "from",
    "to": "to",
}


def attribution_charts(result: Mapping[str, Any], *, prefix: str = "attribution") -> list[Chart]:
    """Credit per channel (conversions and new customers) and cost per acquired customer."""
    channels = list(result.get("channels", []))
    names = [str(c["channel"]) for c in channels]
    costed = [c for c in channels if c.get("cost_per_acquisition") is not None]
    return [
        Chart(
            title="Conversions and new customers by channel",
            x=names,
            series=[
                Series("conversions", [c["conversions"] for c in channels]),
                Series("new customers", [c["new_customers"] for c in channels]),
            ]
            if channels
            else [],
            kind="bar",
            x_title="channel",
            y_title="people credited",
            id=f"{prefix}-by-channel",
        ),
        Chart(
            title="Cost per acquired customer by channel",
            x=[str(c["channel"]) for c in costed],
            series=[Series("cost per acquisition", [c["cost_per_acquisition"] for c in costed])]
            if costed
            else [],
            kind="bar",
            fmt="money",
            x_title="channel",
            y_title="spend per new customer",
            id=f"{prefix}-cost",
        ),
    ]


def spec_of(values: Mapping[str, str]) -> tuple[AttributionSpec | None, dict[str, str]]:
    """The spec typed in the form, or the reason of each wrong field (by form name)."""
    try:
        spec = AttributionSpec.model_validate(
            {
                "model": values["model"],
                "conversion_event": values["event"].strip(),
                "lookback_days": values["lookback"].strip(),
                "from": values["from"].strip(),
                "to": values["to"].strip(),
            }
        )
        check_spec(spec)
    except ValidationError as exc:
        return None, {
            FIELDS.get(str(e["loc"][0]), str(e["loc"][0])): str(e["msg"]) for e in exc.errors()
        }
    except InvalidInput as exc:
        return None, {FIELDS.get(p.field, p.field): p.reason for p in exc.problems}
    return spec, {}


@router.get("/analytics/attribution")
def attribution_page(
    request: Request,
    state: State,
    caller: Reader,
    model: str = "last_touch",
    event: str = "Order Completed",
    lookback: str = "30",
    to: str | None = None,
) -> HTMLResponse:
    today = utcnow().date()
    form = {
        "model": model,
        "event": event,
        "lookback": lookback,
        "from": request.query_params.get("from")
        or (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "to": to or today.isoformat(),
    }
    spec, problems = spec_of(form)
    context: dict[str, Any] = {"form": form, "problems": problems, "models": MODELS}
    if spec is None:
        return render(
            request,
            "analytics/attribution.html",
            caller=caller,
            status=400,
            error="Check the highlighted fields.",
            **context,
        )
    result = run_attribution(state, caller.business_id, spec)
    return render(
        request,
        "analytics/attribution.html",
        caller=caller,
        result=result,
        charts=attribution_charts(result),
        body=spec.model_dump_json(by_alias=True),
        **context,
    )


@router.post("/analytics/attribution/save")
def save_attribution(
    request: Request,
    state: State,
    caller: Manager,
    name: Annotated[str, Form()] = "",
    model: Annotated[str, Form()] = "",
    event: Annotated[str, Form()] = "",
    lookback: Annotated[str, Form()] = "",
    last_days: Annotated[str, Form()] = "",
) -> Response:
    """Save the report shown to the dashboard, over the latest `last_days` days."""
    try:
        data = reports.SavedReportIn(
            kind="attribution",
            name=name.strip() or "Attribution",
            spec={
                "model": model,
                "conversion_event": event,
                "lookback_days": int(lookback),
                "last_days": int(last_days),
            },
        )
        with state.store.write() as conn:
            reports.save(conn, business_id=caller.business_id, data=data)
    except (ValueError, ValidationError, InvalidInput) as exc:
        return redirect(request, "/analytics/attribution", error=f"Not saved: {exc}"[:300])
    return redirect(request, "/analytics/dashboard", notice=f"{data.name} saved to the dashboard")
