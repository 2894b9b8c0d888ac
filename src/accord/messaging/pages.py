"""Email pages of the admin UI: templates with a sandboxed preview, lists, campaigns with
their KPIs and A/B test, KPIs over time, and the suppression list.

Reads and writes go through the messaging modules (`templates`, `lists`, `campaigns`,
`sending`, `kpis`); only the suppression listing is read here, filtered by the
caller's business.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from accord.core.clock import utcnow
from accord.core.errors import AccordError, Conflict, FieldProblem, InvalidInput
from accord.messaging import campaigns, kpis, lists, sending, service, templates
from accord.messaging.models import CampaignIn, ListIn, MemberIn, TemplateIn
from accord.reach import service as reach
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.email_wiring import Email
from accord.web.state import State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [
    NavEntry("Email templates", "/email/templates", "email.read", "Email", 35),
    NavEntry("Email lists", "/email/lists", "email.read", "Email", 36),
    NavEntry("Campaigns", "/email/campaigns", "email.read", "Email", 37),
    NavEntry("Email over time", "/email/performance", "email.read", "Email", 38),
    NavEntry("Suppressions", "/email/suppressions", "email.read", "Email", 39),
]

Reader = Annotated[Caller, Depends(requires("email.read"))]
Manager = Annotated[Caller, Depends(requires("email.manage"))]

PAGE_SIZE = 200
RATE_LABELS = {
    "delivery_rate": "Delivery",
    "open_rate": "Human open",
    "click_through_rate": "Click-through (CTR)",
    "click_to_open_rate": "Click-to-open",
    "unsubscribe_rate": "Unsubscribe",
    "bounce_rate": "Bounce",
    "complaint_rate": "Complaint",
}
SAMPLE_CONTACT = '{"first_name": "Ada", "last_name": "Lovelace"}'
BLANK_TEMPLATE = {
    "name": "",
    "subject": "Hello {{ contact.first_name | default('there') }}",
    "html": "<html><body><p>Hello {{ contact.first_name | default('there') }},</p></body></html>",
    "text": "Hello {{ contact.first_name | default('there') }},\n",
}


async def _require_campaign(state: State, caller: Caller, campaign_id: str) -> None:
    """Another business's campaign is not found, before any input is looked at."""

    def work(conn: Connection) -> None:
        campaigns.campaign_row(conn, business_id=caller.business_id, campaign_id=campaign_id)

    await store_work.read(state, work)


def _text(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)


def _pydantic_problems(exc: ValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(".".join(str(p) for p in e["loc"]) or "form", e["msg"]) for e in exc.errors()
    ]


# Templates -----------------------------------------------------------------------------


@router.get("/email/templates")
async def templates_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[Any]:
        return templates.list_templates(conn, business_id=caller.business_id)

    rows = await store_work.read(state, work)
    return await arender(request, "email/templates.html", caller=caller, rows=rows)


async def _editor(
    request: Request,
    caller: Caller,
    *,
    values: dict[str, str],
    source: str | None,
    preview: Any = None,
    problems: list[FieldProblem] | None = None,
    status: int = 200,
) -> Response:
    return await arender(
        request,
        "email/template_edit.html",
        caller=caller,
        values=values,
        source=source,
        preview=preview,
        problems=problems or [],
        status=status,
    )


@router.get("/email/templates/new")
async def new_template_page(request: Request, caller: Manager) -> Response:
    values = {**BLANK_TEMPLATE, "sample": SAMPLE_CONTACT}
    return await _editor(request, caller, values=values, source=None)


@router.get("/email/templates/{template_id}")
async def template_page(
    request: Request, state: State, caller: Reader, template_id: str
) -> Response:
    def work(conn: Connection) -> Any:
        return templates.get_template(conn, business_id=caller.business_id, template_id=template_id)

    row = await store_work.read(state, work)
    values = {
        "name": row.name,
        "subject": row.subject,
        "html": row.html,
        "text": row.text,
        "sample": SAMPLE_CONTACT,
    }
    return await _editor(request, caller, values=values, source=row.id)


@router.post("/email/templates")
async def save_template_page(request: Request, state: State, caller: Manager) -> Response:
    """Preview through the sandbox, or save. A saved template is never changed in place:
    saving an edited one makes a new template, so campaigns keep what they sent."""
    posted = await request.form()
    values = {k: str(posted.get(k, "")) for k in ("name", "subject", "html", "text", "sample")}
    source = str(posted.get("source", "")) or None
    problems: list[FieldProblem] = []
    try:
        sample = orjson.loads(values["sample"] or "{}")
        if not isinstance(sample, dict):
            raise ValueError("not an object")
    except (orjson.JSONDecodeError, ValueError):
        problems.append(FieldProblem("sample", "the sample contact must be a JSON object"))
        sample = {}
    saving = posted.get("action") == "save"
    data: TemplateIn | None = None
    try:
        data = TemplateIn(**{k: values[k] for k in ("name", "subject", "html", "text")})
    except ValidationError as exc:
        # A preview needs no name yet; saving does.
        if saving:
            problems.extend(_pydantic_problems(exc))
    preview = None
    try:
        compiled = templates.compile_template(
            subject=values["subject"], html=values["html"], text=values["text"]
        )
        preview = compiled.render(templates.personalisation(sample, email="ada@example.com"))
    except InvalidInput as exc:
        problems.extend(exc.problems)
    if problems or data is None or not saving:
        return await _editor(
            request,
            caller,
            values=values,
            source=source,
            preview=preview,
            problems=problems,
            status=400 if problems else 200,
        )
    saved = data

    def work(conn: Connection) -> str:
        return templates.create_template(conn, business_id=caller.business_id, data=saved)

    template_id = await store_work.write(state, work)
    return redirect(request, f"/email/templates/{template_id}", notice="Template saved")


# Lists ---------------------------------------------------------------------------------


@router.get("/email/lists")
async def lists_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[Any]:
        return lists.list_lists(conn, business_id=caller.business_id)

    return await arender(
        request, "email/lists.html", caller=caller, rows=await store_work.read(state, work)
    )


@router.post("/email/lists")
async def create_list_page(
    request: Request, state: State, caller: Manager, name: Annotated[str, Form()] = ""
) -> Response:
    try:
        data = ListIn(name=name.strip())
    except ValidationError:
        return redirect(request, "/email/lists", error="Give the list a name")

    def work(conn: Connection) -> str:
        return lists.create_list(conn, business_id=caller.business_id, data=data)

    list_id = await store_work.write(state, work)
    return redirect(request, f"/email/lists/{list_id}", notice=f"List {data.name} made")


@router.get("/email/lists/{list_id}")
async def list_page(request: Request, state: State, caller: Reader, list_id: str) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        members = lists.list_recipients(conn, business_id=caller.business_id, list_id=list_id)
        name = lists.require_list(conn, business_id=caller.business_id, list_id=list_id)
        refused = reach.suppressed(
            conn,
            business_id=caller.business_id,
            kind="email",
            values=[m.email for m in members],
            channel="email",
        )
        return {"list_id": list_id, "name": name, "members": members, "refused": refused}

    return await arender(
        request, "email/list.html", caller=caller, **await store_work.read(state, work)
    )


@router.post("/email/lists/{list_id}/members")
async def add_member_page(
    request: Request,
    state: State,
    caller: Manager,
    list_id: str,
    email: Annotated[str, Form()] = "",
) -> Response:
    where = f"/email/lists/{list_id}"

    def exists(conn: Connection) -> None:
        lists.require_list(conn, business_id=caller.business_id, list_id=list_id)

    await store_work.read(state, exists)
    try:
        member = MemberIn(email=email.strip())
    except ValidationError:
        return redirect(request, where, error=f"{email!r} is not an email address")

    def work(conn: Connection) -> None:
        lists.add_member(conn, business_id=caller.business_id, list_id=list_id, member=member)

    await store_work.write(state, work)
    return redirect(request, where, notice=f"{member.email} added")


# Campaigns -----------------------------------------------------------------------------


def _due(text: str, field: str, problems: list[FieldProblem]) -> datetime | None:
    """A `datetime-local` value, read as UTC."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(FieldProblem(field, "use a date and time like 2026-05-01T09:30"))
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
        "due_at": _due(value("due_at"), "due_at", problems),
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


async def _campaigns_view(state: State, caller: Caller) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "rows": campaigns.list_campaigns(conn, business_id=caller.business_id, limit=PAGE_SIZE),
            "templates": templates.list_templates(conn, business_id=caller.business_id),
            "lists": lists.list_lists(conn, business_id=caller.business_id),
        }

    return await store_work.read(state, work)


@router.get("/email/campaigns")
async def campaigns_page(request: Request, state: State, caller: Reader) -> Response:
    view = await _campaigns_view(state, caller)
    return await arender(request, "email/campaigns.html", caller=caller, posted={}, **view)


@router.post("/email/campaigns")
async def create_campaign_page(request: Request, state: State, caller: Manager) -> Response:
    posted = await request.form()
    problems: list[FieldProblem] = []
    body = _campaign_body(posted, problems)
    campaign_id: str | None = None
    if not problems:
        try:
            data = CampaignIn.model_validate(body)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc))
        else:

            def work(conn: Connection) -> str:
                return campaigns.create_campaign(conn, business_id=caller.business_id, data=data)

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
        error="Nothing was saved. " + _text(problems),
        status=400,
        **view,
    )


@router.get("/email/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, state: State, caller: Reader, campaign_id: str
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
    return await arender(
        request,
        "email/campaign.html",
        caller=caller,
        labels=RATE_LABELS,
        chart=counts_chart(view["kpis"], view["variants"]),
        **view,
    )


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
    report = await sending.send_test(
        state.store,
        business_id=caller.business_id,
        campaign_id=campaign_id,
        to=[str(m.email) for m in members],
        mailer=email.mailer,
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
    due = _due(due_at, "due_at", problems)
    if due is None:
        return redirect(request, where, error=_text(problems) or "Choose when to send")
    when = due

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
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    return redirect(
        request,
        where,
        notice=f"{report.sent} sent, {report.failed} failed"
        + (f", skipped: {skipped}" if skipped else "")
        + f"; the campaign is {report.status}",
    )


# KPIs over time ------------------------------------------------------------------------

CHART_RATES = {
    "open_rate": "Human open",
    "click_through_rate": "Click-through",
    "unsubscribe_rate": "Unsubscribe",
    "bounce_rate": "Bounce",
}
COUNTS = {
    "sent": "Sent",
    "delivered": "Delivered",
    "human_openers": "Opened by people",
    "clickers": "Clicked",
    "unsubscribes": "Unsubscribed",
    "bounces": "Bounced",
    "complaints": "Complained",
}


def rates_chart(found: list[tuple[str, kpis.Kpis]]) -> Chart:
    """The main rates per day with their 95 % intervals."""

    def series(key: str, label: str) -> Series:
        rates = [k.rates[key] for _, k in found]
        return Series(
            label,
            [r.value for r in rates],
            low=[r.low for r in rates],
            high=[r.high for r in rates],
        )

    return Chart(
        title="Rates per day (UTC)",
        x=[day for day, _ in found],
        series=[series(key, label) for key, label in CHART_RATES.items()],
        fmt="percent",
        x_title="Day",
        id="rates-per-day",
        notes=["Each rate with its 95 % interval."],
    )


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


@router.get("/email/performance")
async def performance_page(
    request: Request, state: State, caller: Reader, days: int = 30
) -> Response:
    days = min(max(days, 1), 366)
    until = utcnow() + timedelta(days=1)

    def work(conn: Connection) -> list[tuple[str, kpis.Kpis]]:
        return kpis.kpis_by_day(
            conn,
            business_id=caller.business_id,
            since=until - timedelta(days=days),
            until=until,
        )

    found = await store_work.read(state, work)
    return await arender(
        request,
        "email/performance.html",
        caller=caller,
        rows=found,
        days=days,
        chart=rates_chart(found),
        labels=RATE_LABELS,
    )


# Suppressions --------------------------------------------------------------------------


@router.get("/email/suppressions")
async def suppressions_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[dict[str, Any]]:
        return reach.list_suppressions(
            conn, business_id=caller.business_id, kind="email", limit=PAGE_SIZE
        )

    return await arender(
        request, "email/suppressions.html", caller=caller, rows=await store_work.read(state, work)
    )


@router.post("/email/suppressions")
async def suppress_page(
    request: Request,
    state: State,
    caller: Manager,
    email: Email,
    address: Annotated[str, Form()] = "",
) -> Response:
    try:
        member = MemberIn(email=address.strip())
    except ValidationError:
        return redirect(
            request, "/email/suppressions", error=f"{address!r} is not an email address"
        )

    def work(conn: Connection) -> None:
        service.suppress_email(
            conn,
            business_id=caller.business_id,
            email=str(member.email),
            reason="manual",
        )

    await store_work.write(state, work)
    return redirect(request, "/email/suppressions", notice=f"{member.email} will get no email")
