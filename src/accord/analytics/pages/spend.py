"""The spend page: every source of the one spend model for a range of days (manual
entries, lead imports, the leads funnel's campaign costs, ad-account campaigns' ad logs),
spend per day by channel, and a form to enter spend by hand."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from accord.accounts.service import campaign_names
from accord.analytics import spend
from accord.analytics.channels import NO_CAMPAIGN
from accord.analytics.pages.common import Window
from accord.analytics.pages.volume import window_of
from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.engine.connection import connect
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import redirect, render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Caller, Depends(requires("analytics.read"))]
Manager = Annotated[Caller, Depends(requires("analytics.manage"))]


def spend_chart(lines: list[spend.SpendLine], window: Window) -> Chart:
    labels = [day.isoformat() for day in window.days()]
    position = {label: i for i, label in enumerate(labels)}
    per_channel: dict[str, list[float]] = {}
    for line in lines:
        i = position.get(line.day.isoformat())
        if i is not None:
            per_channel.setdefault(line.channel, [0.0] * len(labels))[i] += line.amount
    return Chart(
        title="Spend per day by channel",
        x=labels,
        series=[Series(channel, values) for channel, values in sorted(per_channel.items())],
        kind="stacked",
        fmt="money",
        x_title="day (UTC)",
        y_title="spend",
        id="spend-by-channel",
    )


@router.get("/analytics/spend")
def spend_page(
    request: Request,
    state: State,
    caller: Reader,
    since: str | None = None,
    until: str | None = None,
) -> HTMLResponse:
    problems: dict[str, str] = {}
    window = window_of(since, until, today=utcnow().date(), problems=problems)
    form = {
        "since": since if since is not None else window.since.isoformat(),
        "until": until if until is not None else window.until.isoformat(),
    }
    context: dict[str, Any] = {
        "form": form,
        "problems": problems,
        "channels": spend.SPEND_CHANNELS,
        "today": utcnow().date().isoformat(),
    }
    if problems:
        return render(
            request,
            "analytics/spend.html",
            caller=caller,
            status=400,
            error="Check the highlighted fields.",
            **context,
        )
    settings = state.settings
    with state.store.read() as conn:
        lines = spend.stored(
            conn, business_id=caller.business_id, since=window.since, until=window.until
        )
        names = campaign_names(conn, business_id=caller.business_id)
    lines += spend.ad_log_lines(
        connect(settings.engine_url),
        settings.resolved_lake_url(),
        business_id=caller.business_id,
        since=window.since,
        until=window.until,
        campaign_names=names,
    )
    lines.sort(key=lambda line: (line.day, line.channel, line.campaign))
    return render(
        request,
        "analytics/spend.html",
        caller=caller,
        lines=lines,
        total=sum(line.amount for line in lines),
        chart=spend_chart(lines, window),
        **context,
    )


@router.post("/analytics/spend")
def add_spend(
    request: Request,
    state: State,
    caller: Manager,
    day: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "",
    campaign: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = spend.SpendIn(
            day=date.fromisoformat(day.strip()),
            channel=channel,
            campaign=campaign.strip() or NO_CAMPAIGN,
            amount=float(amount),
        )
    except (ValueError, ValidationError) as exc:
        reason = (
            "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else "give a day as YYYY-MM-DD and an amount as a number"
        )
        return redirect(request, "/analytics/spend", error=f"Not saved: {reason}"[:300])
    with state.store.write() as conn:
        spend.add_entry(conn, business_id=caller.business_id, data=data)
    return redirect(
        request, "/analytics/spend", notice=f"Spend of {data.amount:.2f} on {data.day} saved"
    )


@router.post("/analytics/spend/{entry_id}/delete")
def delete_spend(request: Request, entry_id: str, state: State, caller: Manager) -> Response:
    try:
        with state.store.write() as conn:
            spend.delete_entry(conn, business_id=caller.business_id, entry_id=entry_id)
    except NotFound:
        return redirect(request, "/analytics/spend", error="No such manual entry")
    return redirect(request, "/analytics/spend", notice="Entry removed")
