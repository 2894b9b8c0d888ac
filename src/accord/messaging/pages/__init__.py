"""Email pages of the admin UI: templates with a sandboxed preview, edited in place until
a campaign sends them, lists, KPIs over time and the suppression list; campaigns are in
`campaigns.py`, what the pages share in `common.py`. `router` and `nav` gather them.

Reads and writes go through the messaging modules (`templates`, `lists`, `campaigns`,
`sending`, `kpis`); only the suppression listing is read here, filtered by the
caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection

from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput
from accord.messaging import kpis, lists, service, templates
from accord.messaging.models import ListIn, MemberIn, TemplateIn
from accord.messaging.pages import campaigns
from accord.messaging.pages.common import (
    PAGE_SIZE,
    RATE_LABELS,
    Manager,
    Reader,
    by_field,
    pydantic_problems,
)
from accord.reach import service as reach
from accord.recommend.serving import MAX_LIMIT
from accord.store.db import Store
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.charts import Chart, Series
from accord.web.email_wiring import Email
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
router.include_router(campaigns.router)
nav = [
    NavEntry("Email templates", "/email/templates", "email.read", "Email", 35),
    NavEntry("Email lists", "/email/lists", "email.read", "Email", 36),
    NavEntry("Campaigns", "/email/campaigns", "email.read", "Email", 37),
    NavEntry("Email over time", "/email/performance", "email.read", "Email", 38),
    NavEntry("Suppressions", "/email/suppressions", "email.read", "Email", 39),
]

SAMPLE_CONTACT = '{"first_name": "Ada", "last_name": "Lovelace"}'
BLANK_TEMPLATE = {
    "name": "",
    "subject": "Hello {{ contact.first_name | default('there') }}",
    "html": "<html><body><p>Hello {{ contact.first_name | default('there') }},</p></body></html>",
    "text": "Hello {{ contact.first_name | default('there') }},\n",
}


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
    sent_by: list[str] | None = None,
    preview: Any = None,
    problems: list[FieldProblem] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return await arender(
        request,
        "email/template_edit.html",
        caller=caller,
        values=values,
        source=source,
        sent_by=sent_by or [],
        may_edit=caller.can("email.manage"),
        preview=preview,
        problems=problems or [],
        by_field=by_field(problems or []),
        error=error,
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
    business_id = caller.business_id

    def work(conn: Connection) -> tuple[Any, list[str]]:
        row = templates.get_template(conn, business_id=business_id, template_id=template_id)
        sent = templates.campaigns_sent_with(conn, business_id=business_id, template_id=template_id)
        return row, sent

    row, sent_by = await store_work.read(state, work)
    values = {
        "name": row.name,
        "subject": row.subject,
        "html": row.html,
        "text": row.text,
        "sample": SAMPLE_CONTACT,
    }
    return await _editor(request, caller, values=values, source=row.id, sent_by=sent_by)


@dataclass(frozen=True)
class _Posted:
    """A template form as posted: its values, what it asks for, and what is wrong."""

    values: dict[str, str]
    action: str
    checked: templates.CheckedTemplate | None
    preview: Any
    problems: list[FieldProblem]


def _check_posted(values: dict[str, str], action: str, store: Store, business_id: str) -> _Posted:
    """Check the form in the sandbox and render the preview (CPU-bound: in a worker)."""
    problems: list[FieldProblem] = []
    try:
        sample = orjson.loads(values["sample"] or "{}")
        if not isinstance(sample, dict):
            raise ValueError("not an object")
    except (orjson.JSONDecodeError, ValueError):
        problems.append(FieldProblem("sample", "the sample contact must be a JSON object"))
        sample = {}
    data: TemplateIn | None = None
    try:
        data = TemplateIn(**{k: values[k] for k in ("name", "subject", "html", "text")})
    except ValidationError as exc:
        # A preview needs no name yet; saving does.
        if action != "preview":
            problems.extend(pydantic_problems(exc))
    preview = None
    checked = None
    try:
        compiled = templates.compile_template(
            subject=values["subject"], html=values["html"], text=values["text"]
        )
        checked = templates.CheckedTemplate(data) if data is not None else None
        names = templates.personalisation(sample, email="ada@example.com")
        if any("recommendations" in values[part] for part in ("subject", "html", "text")):
            # The sample contact has no profile: its recommendations are the popular ones,
            # read before rendering so the render's time limit counts the template only.
            with store.read() as conn:
                popular = templates.recommender(conn, business_id=business_id)({}, MAX_LIMIT)
            names["recommendations"] = templates.listed(popular)
        preview = compiled.render(names)
    except InvalidInput as exc:
        problems.extend(exc.problems)
    return _Posted(values, action, checked, preview, problems)


async def _posted_template(request: Request, state: AppState, caller: Caller) -> _Posted:
    """Read the form, then check it and render the preview off the event loop."""
    posted = await request.form()
    values = {k: str(posted.get(k, "")) for k in ("name", "subject", "html", "text", "sample")}
    action = str(posted.get("action", "preview"))
    return await store_work.run(_check_posted, values, action, state.store, caller.business_id)


async def _save_new(
    request: Request, state: State, caller: Caller, checked: templates.CheckedTemplate
) -> Response:
    def work(conn: Connection) -> str:
        return templates.create_template(conn, business_id=caller.business_id, checked=checked)

    template_id = await store_work.write(state, work)
    return redirect(request, f"/email/templates/{template_id}", notice="Template saved")


@router.post("/email/templates")
async def save_template_page(request: Request, state: State, caller: Manager) -> Response:
    """Preview a new template through the sandbox, or save it."""
    form = await _posted_template(request, state, caller)
    if form.problems or form.checked is None or form.action == "preview":
        return await _editor(
            request,
            caller,
            values=form.values,
            source=None,
            preview=form.preview,
            problems=form.problems,
            status=400 if form.problems else 200,
        )
    return await _save_new(request, state, caller, form.checked)


@router.post("/email/templates/{template_id}")
async def edit_template_page(
    request: Request, state: State, caller: Manager, template_id: str
) -> Response:
    """Preview the edited template, save it in place (`save`) or as a new one (`copy`).

    In place is refused (409) once a campaign has sent with it: what was sent stays on
    record, and the page offers saving a new template instead.
    """
    business_id = caller.business_id

    def sent_with(conn: Connection) -> list[str]:
        templates.get_template(conn, business_id=business_id, template_id=template_id)
        return templates.campaigns_sent_with(conn, business_id=business_id, template_id=template_id)

    sent_by = await store_work.read(state, sent_with)
    form = await _posted_template(request, state, caller)
    if form.problems or form.checked is None or form.action == "preview":
        return await _editor(
            request,
            caller,
            values=form.values,
            source=template_id,
            sent_by=sent_by,
            preview=form.preview,
            problems=form.problems,
            status=400 if form.problems else 200,
        )
    if form.action == "copy":
        return await _save_new(request, state, caller, form.checked)
    checked = form.checked

    def work(conn: Connection) -> None:
        templates.update_template(
            conn,
            business_id=business_id,
            template_id=template_id,
            checked=checked,
            actor=caller.actor,
            ip=caller.ip,
        )

    try:
        await store_work.write(state, work)
    except Conflict as exc:
        return await _editor(
            request,
            caller,
            values=form.values,
            source=template_id,
            sent_by=sent_by,
            preview=form.preview,
            error=str(exc),
            status=409,
        )
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


# KPIs over time ------------------------------------------------------------------------

CHART_RATES = {
    "open_rate": "Human open",
    "click_through_rate": "Click-through",
    "unsubscribe_rate": "Unsubscribe",
    "bounce_rate": "Bounce",
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
