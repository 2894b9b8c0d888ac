"""Email routes: admin API for templates, lists, campaigns, KPIs; public tracking links."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.messaging import campaigns, kpis, lists, sending, templates, tracking
from accord.messaging.bounces import (
    apply_delivery_reports,
    parse_report_email,
    parse_sendgrid,
    parse_ses,
)
from accord.messaging.models import (
    CampaignIn,
    CampaignPatch,
    ListIn,
    MemberIn,
    TemplateIn,
    TemplatePatch,
    TestSendIn,
)
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited
from accord.web.email_wiring import Email
from accord.web.state import State

router = APIRouter()
admin = APIRouter(prefix="/api/email", tags=["email"])
public = APIRouter(prefix="/e", tags=["email links"])

Manage = Annotated[Caller, Depends(requires("email.manage"))]
Read = Annotated[Caller, Depends(requires("email.read"))]

# The smallest transparent GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"Cache-Control": "no-store, private"}


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@admin.post("/templates", status_code=201, summary="Create an email template")
def create_template(data: TemplateIn, caller: Manage, state: State) -> dict[str, str]:
    checked = templates.check_template(data)  # CPU-bound: before the transaction opens
    with state.store.write() as conn:
        template_id = templates.create_template(
            conn, business_id=caller.business_id, checked=checked
        )
    return {"id": template_id}


@admin.patch(
    "/templates/{template_id}",
    summary="Change an email template in place",
    description="Parts left out keep their value; the sandbox checks the result (400 "
    "invalid_input naming `subject`, `html` or `text`). A template a campaign has sent "
    "(or is sending) is refused with 409: create a new template instead.",
)
def update_template(
    template_id: str, data: TemplatePatch, caller: Manage, state: State
) -> dict[str, Any]:
    with state.store.read() as conn:
        row = templates.get_template(conn, business_id=caller.business_id, template_id=template_id)
    checked = templates.check_template(templates.patched(row, data))
    with state.store.write() as conn:
        templates.update_template(
            conn,
            business_id=caller.business_id,
            template_id=template_id,
            checked=checked,
            actor=caller.actor,
            ip=caller.ip,
        )
    return {"id": template_id, **checked.data.model_dump()}


@admin.post("/lists", status_code=201, summary="Create a list")
def create_list(data: ListIn, caller: Manage, state: State) -> dict[str, str]:
    with state.store.write() as conn:
        return {"id": lists.create_list(conn, business_id=caller.business_id, data=data)}


@admin.post("/lists/{list_id}/members", status_code=204, summary="Add a list member")
def add_member(list_id: str, data: MemberIn, caller: Manage, state: State) -> Response:
    with state.store.write() as conn:
        lists.add_member(conn, business_id=caller.business_id, list_id=list_id, member=data)
    return Response(status_code=204)


@admin.post("/campaigns", status_code=201, summary="Create a campaign (scheduled if due_at)")
def create_campaign(data: CampaignIn, caller: Manage, state: State) -> dict[str, str]:
    with state.store.write() as conn:
        return {"id": campaigns.create_campaign(conn, business_id=caller.business_id, data=data)}


@admin.patch(
    "/campaigns/{campaign_id}",
    summary="Change a campaign before it is sent",
    description="Name, template, list or audience, sender, schedule (`due_at`; null makes "
    "it a draft), A/B test and spend; fields left out keep their value. Only draft and "
    "scheduled campaigns change: a sending, testing or sent one answers 409.",
)
def update_campaign(
    campaign_id: str, data: CampaignPatch, caller: Manage, state: State
) -> dict[str, Any]:
    with state.store.write() as conn:
        saved = campaigns.patch_campaign(
            conn,
            business_id=caller.business_id,
            campaign_id=campaign_id,
            patch=data,
            actor=caller.actor,
            ip=caller.ip,
        )
        row = campaigns.campaign_row(conn, business_id=caller.business_id, campaign_id=campaign_id)
    return {"id": campaign_id, "status": row.status, **saved.model_dump(mode="json")}


@admin.post("/campaigns/{campaign_id}/send", summary="Send now (or the next A/B phase)")
async def send_campaign(
    campaign_id: str, caller: Manage, state: State, email: Email
) -> dict[str, Any]:
    report = await sending.send_campaign(
        state.store,
        business_id=caller.business_id,
        campaign_id=campaign_id,
        mailer=email.mailer,
        wiring=email.wiring,
    )
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
    return summary


@admin.post("/campaigns/{campaign_id}/test", summary="Send a test to your own addresses")
async def test_campaign(
    campaign_id: str, data: TestSendIn, caller: Manage, state: State, email: Email
) -> dict[str, Any]:
    report = await sending.send_test(
        state.store,
        business_id=caller.business_id,
        campaign_id=campaign_id,
        to=[str(address) for address in data.to],
        mailer=email.mailer,
    )
    await store_work.write(state, lambda conn: _record_test_send(conn, caller, report))
    return asdict(report)


def _record_test_send(conn: Connection, caller: Caller, report: sending.SendReport) -> None:
    """The audit entry of a test send, as the campaign page writes it too."""
    store_work.record(
        conn,
        caller,
        "email_campaign.test_send",
        asset=("email_campaign", report.campaign_id),
        sent=report.sent,
        failed=report.failed,
    )


@admin.get("/campaigns/{campaign_id}/kpis", summary="Delivery, opens, clicks... with 95% CIs")
def campaign_kpis(campaign_id: str, caller: Read, state: State) -> dict[str, Any]:
    with state.store.read() as conn:
        overall = kpis.campaign_kpis(conn, business_id=caller.business_id, campaign_id=campaign_id)
        body: dict[str, Any] = {"campaign_id": campaign_id, **asdict(overall)}
        campaign = campaigns.campaign_row(
            conn, business_id=caller.business_id, campaign_id=campaign_id
        )
        if campaign.ab_test:
            decision = kpis.ab_decision(
                conn, business_id=caller.business_id, campaign_id=campaign_id
            )
            body["ab_test"] = {
                "winner": campaign.winner,
                "decision": asdict(decision),
                "variants": {
                    v: asdict(
                        kpis.campaign_kpis(
                            conn,
                            business_id=caller.business_id,
                            campaign_id=campaign_id,
                            variant=v,
                        )
                    )
                    for v in ("A", "B")
                },
            }
    return body


@admin.get("/kpis", summary="KPIs of campaign email per day")
def kpis_by_day(
    caller: Read, state: State, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> list[dict[str, Any]]:
    until = utcnow() + timedelta(days=1)
    with state.store.read() as conn:
        found = kpis.kpis_by_day(
            conn, business_id=caller.business_id, since=until - timedelta(days=days), until=until
        )
    return [{"day": day, **asdict(of_day)} for day, of_day in found]


@admin.post("/bounces", summary="Read a bounce (RFC 3464 DSN) or complaint (ARF) email")
async def bounce_email(request: Request, caller: Manage, state: State, email: Email) -> Any:
    reports = parse_report_email(await read_limited(request, limit=state.settings.max_import_bytes))
    matched = await store_work.write(
        state,
        lambda conn: apply_delivery_reports(conn, business_id=caller.business_id, reports=reports),
    )
    return {"reports": [asdict(r) for r in reports], "matched": matched}


@admin.get("/webhooks/{provider}", summary="The address to give a provider for its events")
def webhook_address(
    provider: Literal["ses", "sendgrid"], caller: Manage, email: Email
) -> dict[str, str]:
    token = email.mailer.signer.dumps("webhook", caller.business_id)
    return {"url": f"{email.mailer.base_url}/e/webhooks/{provider}/{token}"}


@public.post("/webhooks/{provider}/{token}", summary="Bounce and complaint events of a provider")
async def provider_webhook(
    provider: Literal["ses", "sendgrid"], token: str, request: Request, state: State, email: Email
) -> dict[str, int]:
    business_id = email.mailer.signer.loads("webhook", token)
    body = await read_limited(request, limit=state.settings.max_import_bytes)
    reports = parse_ses(body) if provider == "ses" else parse_sendgrid(body)
    matched = await store_work.write(
        state,
        lambda conn: apply_delivery_reports(conn, business_id=str(business_id), reports=reports),
    )
    return {"reports": len(reports), "matched": matched}


@public.get("/o/{token}", summary="Open pixel", include_in_schema=False)
async def open_pixel(token: str, request: Request, state: State, email: Email) -> Response:
    await store_work.write(
        state,
        lambda conn: tracking.record_open(
            conn,
            mailer=email.mailer,
            token=token,
            user_agent=request.headers.get("user-agent"),
            ip=_client_ip(request),
            wiring=email.wiring,
        ),
    )
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@public.get("/c/{token}", summary="Click redirect", include_in_schema=False)
async def click(token: str, request: Request, state: State, email: Email) -> Response:
    target = await store_work.write(
        state,
        lambda conn: tracking.record_click(
            conn,
            mailer=email.mailer,
            token=token,
            user_agent=request.headers.get("user-agent"),
            ip=_client_ip(request),
            wiring=email.wiring,
        ),
    )
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


@public.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences(token: str, state: State, email: Email) -> Response:
    found = await store_work.read(
        state, lambda conn: tracking.subscription(conn, mailer=email.mailer, token=token)
    )
    return email.page("email/preferences.html", email=found.email, unsubscribed=found.unsubscribed)


@public.post("/u/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request, state: State, email: Email) -> Response:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the preference page form."""
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    if not one_click and form.get("action") != "unsubscribe":
        raise InvalidInput(
            [FieldProblem("List-Unsubscribe", "expected List-Unsubscribe=One-Click")]
        )
    found = await store_work.write(
        state,
        lambda conn: tracking.unsubscribe(
            conn,
            mailer=email.mailer,
            token=token,
            wiring=email.wiring,
            via="one_click" if one_click else "preference_page",
            ip=_client_ip(request),
        ),
    )
    if one_click:
        return Response("unsubscribed", media_type="text/plain", headers=NO_STORE)
    return email.page("email/preferences.html", email=found.email, unsubscribed=True)


router.include_router(admin)
router.include_router(public)
