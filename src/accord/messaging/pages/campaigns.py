"""Email campaign pages: the listing and the new-campaign form, one campaign with its KPIs
and A/B test, changing it until it is sent, test sends, scheduling and sending."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from accord.core.errors import AccordError, Conflict, FieldProblem, InvalidInput
from accord.messaging import campaigns, kpis, lists, sending, templates
from accord.messaging.models import CampaignIn, MemberIn
from accord.messaging.pages.common import (
    PAGE_SIZE,
    RATE_LABELS,
    Manager,
    Reader,
    by_field,
    due,
    problems_text,
    pydantic_problems,
)
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.charts import Chart, Series
from accord.web.email_wiring import Email
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)

LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


async def _require_campaign(state: State, caller: Caller, campaign_id: str) -> None:
    """Another business's campaign is not found, before any input is looked at."""

    def work(conn: Connection) -> None:
        campaigns.campaign_row(conn, business_id=caller.business_id, campaign_id=campaign_id)

    await store_work.read(state, work)


def _campaign_body(posted: FormData, problems: list[FieldProblem]) -> dict[str, Any]:
    def value(name: str) -> str:
        return str(posted.get(name, "")).strip()

    target = value("target")
    body: dict[str, Any] = {
        "name": value("name"),
        "template_id": value("template_id"),
        "from_address": value("from_address"),
        "list_id": (value("list_id") or None) if target == "list" else None,
        "audience_id": (value("audience_id") or None) if target == "audience" else None,
        "due_at": due(value("due_at"), "due_at", problems),
    }
    if value("spend"):
        body["spend"] = value("spend")
    if posted.get("ab_enabled") == "on":
        ab: dict[str, Any] = {
            "subject": value("ab_subject") or None,
            "template_id": value("ab_template_id") or None,
            "metric": value("ab_metric") or "clicks",
        }
        for key in ("sample_share", "min_sample", "alpha", "wait_hours"):
            if value(f"ab_{key}"):
                ab[key] = value(f"ab_{key}")
        body["ab_test"] = ab
    return body


def _posted_campaign(posted: FormData) -> tuple[CampaignIn | None, list[FieldProblem]]:
    """The campaign a form describes, or the problems of each field."""
    problems: list[FieldProblem] = []
    body = _campaign_body(posted, problems)
    if problems:
        return None, problems
    try:
        return CampaignIn.model_validate(body), []
    except ValidationError as exc:
        return None, pydantic_problems(exc)


def _form_of(campaign: Any) -> dict[str, str]:
    """A stored campaign as the values of its form."""
    values = {
        "name": campaign.name,
        "template_id": campaign.template_id,
        "from_address": campaign.from_address,
        "spend": "" if campaign.spend is None else f"{campaign.spend:g}",
        "target": "list" if campaign.list_id else "audience",
        "list_id": campaign.list_id or "",
        "audience_id": campaign.audience_id or "",
        "due_at": campaign.due_at.strftime(LOCAL_MINUTE) if campaign.due_at else "",
    }
    if campaign.ab_test:
        ab = orjson.loads(campaign.ab_test)
        values["ab_enabled"] = "on"
        values["ab_subject"] = ab.get("subject") or ""
        values["ab_template_id"] = ab.get("template_id") or ""
        values["ab_metric"] = ab["metric"]
        for key in ("sample_share", "min_sample", "alpha", "wait_hours"):
            values[f"ab_{key}"] = f"{ab[key]:g}"
    return values


async def _choices(state: State, caller: Caller) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "templates": templates.list_templates(conn, business_id=caller.business_id),
            "lists": lists.list_lists(conn, business_id=caller.business_id),
        }

    return await store_work.read(state, work)


async def _campaigns_view(state: State, caller: Caller) -> dict[str, Any]:
    def work(conn: Connection) -> list[Any]:
        return campaigns.list_campaigns(conn, business_id=caller.business_id, limit=PAGE_SIZE)

    return {"rows": await store_work.read(state, work), **await _choices(state, caller)}


@router.get("/email/campaigns")
async def campaigns_page(request: Request, state: State, caller: Reader) -> Response:
    view = await _campaigns_view(state, caller)
    return await arender(
        request, "email/campaigns.html", caller=caller, posted={}, problems={}, **view
    )


@router.post("/email/campaigns")
async def create_campaign_page(request: Request, state: State, caller: Manager) -> Response:
    posted = await request.form()
    data, problems = _posted_campaign(posted)
    campaign_id: str | None = None
    if data is not None:
        made = data

        def work(conn: Connection) -> str:
            return campaigns.create_campaign(conn, business_id=caller.business_id, data=made)

        try:
            campaign_id = await store_work.write(state, work)
        except InvalidInput as exc:
            problems.extend(exc.problems)
        except AccordError as exc:
            problems.append(FieldProblem("campaign", str(exc)))
    if campaign_id is not None:
        return redirect(request, f"/email/campaigns/{campaign_id}", notice="Campaign created")
    view = await _campaigns_view(state, caller)
    return await arender(
        request,
        "email/campaigns.html",
        caller=caller,
        posted={k: str(v) for k, v in posted.items()},
        problems=by_field(problems),
        error="Nothing was saved. " + problems_text(problems),
        status=400,
        **view,
    )


async def _campaign_view(
    request: Request,
    state: State,
    caller: Caller,
    campaign_id: str,
    *,
    posted: dict[str, str] | None = None,
    problems: list[FieldProblem] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        business_id = caller.business_id
        campaign = campaigns.campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
        view: dict[str, Any] = {
            "campaign": campaign,
            "kpis": kpis.campaign_kpis(conn, business_id=business_id, campaign_id=campaign_id),
            "ab": orjson.loads(campaign.ab_test) if campaign.ab_test else None,
            "decision": None,
            "variants": {},
            "email_template": templates.get_template(
                conn, business_id=business_id, template_id=campaign.template_id
            ),
            "postal_address_missing": not campaigns.has_postal_address(
                conn, business_id=business_id
            ),
        }
        if campaign.ab_test:
            view["decision"] = kpis.ab_decision(
                conn, business_id=business_id, campaign_id=campaign_id
            )
            view["variants"] = {
                v: kpis.campaign_kpis(
                    conn, business_id=business_id, campaign_id=campaign_id, variant=v
                )
                for v in ("A", "B")
            }
        return view

    view = await store_work.read(state, work)
    editable = view["campaign"].status in campaigns.EDITABLE_STATUSES
    return await arender(
        request,
        "email/campaign.html",
        caller=caller,
        labels=RATE_LABELS,
        chart=counts_chart(view["kpis"], view["variants"]),
        editable=editable and caller.can("email.manage"),
        posted=_form_of(view["campaign"]) if posted is None else posted,
        problems=by_field(problems or []),
        error=error,
        status=status,
        **view,
        **await _choices(state, caller),
    )


@router.get("/email/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, state: State, caller: Reader, campaign_id: str
) -> Response:
    return await _campaign_view(request, state, caller, campaign_id)


@router.post("/email/campaigns/{campaign_id}")
async def edit_campaign_page(
    request: Request, state: State, caller: Manager, campaign_id: str
) -> Response:
    """Change a draft or scheduled campaign; a sending or sent one answers 409."""
    await _require_campaign(state, caller, campaign_id)
    posted = await request.form()
    data, problems = _posted_campaign(posted)
    kept = {k: str(v) for k, v in posted.items()}
    if data is not None:
        edited = data

        def work(conn: Connection) -> None:
            campaigns.update_campaign(
                conn,
                business_id=caller.business_id,
                campaign_id=campaign_id,
                data=edited,
                actor=caller.actor,
                ip=caller.ip,
            )

        try:
            await store_work.write(state, work)
        except Conflict as exc:
            return await _campaign_view(
                request, state, caller, campaign_id, error=str(exc), status=409
            )
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        return await _campaign_view(
            request,
            state,
            caller,
            campaign_id,
            posted=kept,
            problems=problems,
            error="Nothing was saved. " + problems_text(problems),
            status=400,
        )
    return redirect(request, f"/email/campaigns/{campaign_id}", notice="Campaign saved")


@router.post("/email/campaigns/{campaign_id}/test")
async def test_send_page(
    request: Request,
    state: State,
    caller: Manager,
    email: Email,
    campaign_id: str,
    to: Annotated[str, Form()] = "",
) -> Response:
    where = f"/email/campaigns/{campaign_id}"
    await _require_campaign(state, caller, campaign_id)
    addresses = [a for a in to.replace(",", " ").split() if a]
    try:
        members = [MemberIn(email=a) for a in addresses]
    except ValidationError:
        return redirect(request, where, error="Give one or more email addresses")
    if not 1 <= len(members) <= 20:
        return redirect(request, where, error="Give between 1 and 20 addresses")
    try:
        report = await sending.send_test(
            state.store,
            business_id=caller.business_id,
            campaign_id=campaign_id,
            to=[str(m.email) for m in members],
            mailer=email.mailer,
        )
    except InvalidInput as exc:
        return redirect(request, where, error=str(exc))
    await store_work.write(
        state,
        lambda conn: store_work.record(
            conn,
            caller,
            "email_campaign.test_send",
            asset=("email_campaign", campaign_id),
            sent=report.sent,
            failed=report.failed,
        ),
    )
    if report.failed:
        return redirect(request, where, error=f"{report.failed} test messages could not be sent")
    return redirect(request, where, notice=f"{report.sent} test messages sent")


@router.post("/email/campaigns/{campaign_id}/schedule")
async def schedule_page(
    request: Request,
    state: State,
    caller: Manager,
    campaign_id: str,
    due_at: Annotated[str, Form()] = "",
) -> Response:
    where = f"/email/campaigns/{campaign_id}"
    await _require_campaign(state, caller, campaign_id)
    problems: list[FieldProblem] = []
    chosen = due(due_at, "due_at", problems)
    if chosen is None:
        return redirect(request, where, error=problems_text(problems) or "Choose when to send")
    when = chosen

    def work(conn: Connection) -> None:
        campaigns.schedule_campaign(
            conn, business_id=caller.business_id, campaign_id=campaign_id, due_at=when
        )

    try:
        await store_work.write(state, work)
    except (Conflict, InvalidInput) as exc:
        return redirect(request, where, error=str(exc))
    return redirect(request, where, notice=f"Scheduled for {when:%Y-%m-%d %H:%M} UTC")


@router.post("/email/campaigns/{campaign_id}/send")
async def send_page(
    request: Request, state: State, caller: Manager, email: Email, campaign_id: str
) -> Response:
    where = f"/email/campaigns/{campaign_id}"
    try:
        report = await sending.send_campaign(
            state.store,
            business_id=caller.business_id,
            campaign_id=campaign_id,
            mailer=email.mailer,
            wiring=email.wiring,
        )
    except (Conflict, InvalidInput) as exc:
        return redirect(request, where, error=str(exc))
    summary = asdict(report)
    await store_work.write(
        state,
        lambda conn: store_work.record(
            conn,
            caller,
            "email_campaign.send",
            asset=("email_campaign", campaign_id),
            **{k: summary[k] for k in ("status", "sent", "failed", "skipped")},
        ),
    )
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    return redirect(
        request,
        where,
        notice=f"{report.sent} sent, {report.failed} failed"
        + (f", skipped: {skipped}" if skipped else "")
        + f"; the campaign is {report.status}",
    )


COUNTS = {
    "sent": "Sent",
    "delivered": "Delivered",
    "human_openers": "Opened by people",
    "clickers": "Clicked",
    "unsubscribes": "Unsubscribed",
    "bounces": "Bounced",
    "complaints": "Complained",
}


def counts_chart(overall: kpis.Kpis, variants: dict[str, kpis.Kpis]) -> Chart:
    """What became of a campaign's email: one bar per count, per A/B variant when there are."""
    columns = variants or {"Campaign": overall}
    return Chart(
        title="Delivered, opened, clicked, bounced",
        x=list(COUNTS.values()),
        series=[
            Series(name if not variants else f"Variant {name}", [getattr(k, f) for f in COUNTS])
            for name, k in columns.items()
        ],
        kind="bar",
        y_title="Messages or people",
        id="campaign-counts",
    )
