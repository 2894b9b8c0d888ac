"""Lead pages of the admin UI: forms and their builder, leads, funnel, coupons and imports."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection, func, select
from starlette.datastructures import UploadFile

from accord.core.clock import day_labels, utcnow
from accord.core.errors import AccordError, Conflict, FieldProblem, InvalidInput
from accord.leads import builder, forms, funnel, imports, magnets, service, submissions
from accord.leads.i18n import LANGUAGES
from accord.leads.lead_ads import LEAD_FIELDS, MAX_BYTES, read_lead_ads, read_mapped_csv
from accord.leads.lifecycle import STAGES
from accord.leads.models import (
    PoolIn,
    SpendIn,
    leads,
)
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.email_wiring import Email
from accord.web.state import State
from accord.web.ui import NavEntry, arender, redirect, render

router = APIRouter(include_in_schema=False)
nav = [
    NavEntry("Lead forms", "/leads/forms", "leads.read", "Leads", 30),
    NavEntry("Leads", "/leads/people", "leads.read", "Leads", 31),
    NavEntry("Lead funnel", "/leads/funnel", "leads.read", "Leads", 32),
    NavEntry("Coupons and downloads", "/leads/magnets", "leads.read", "Leads", 33),
    NavEntry("Lead imports", "/leads/import", "leads.read", "Leads", 34),
]

Reader = Annotated[Caller, Depends(requires("leads.read"))]
Manager = Annotated[Caller, Depends(requires("leads.manage"))]

FIELD_KINDS = {
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "company": "Company",
    "choice": "Multiple choice (one answer)",
    "checkboxes": "Checkboxes (several answers)",
    "text": "Open question",
    "hidden": "Hidden (UTM or other tracking value)",
}
PAGE_SIZE = 100
# Uploads through the pages have the API's limits; imports are read whole, as there.
MAX_IMPORT_BYTES = MAX_BYTES
MAX_MAGNET_BYTES = 200 * 1024 * 1024


# Charts --------------------------------------------------------------------------------

# How far back the lead pages count new leads per day.
CHART_DAYS = 30
SOURCES = {"form": "Forms", "lead_ads": "Lead ads", "csv": "CSV imports"}


def _since() -> tuple[date, datetime]:
    first = utcnow().date() - timedelta(days=CHART_DAYS - 1)
    return first, datetime.combine(first, time(), tzinfo=UTC)


def per_day_chart(
    title: str, found: dict[str, dict[str, int]], names: dict[str, str], *, first: date, last: date
) -> Chart:
    """New leads per day, one series per group (stacked), quiet days included."""
    days = day_labels(first, last)
    return Chart(
        title=title,
        x=days,
        series=[
            Series(names.get(group, group), [counts.get(d, 0) for d in days])
            for group, counts in sorted(found.items())
        ],
        kind="stacked",
        x_title="Day",
        y_title="New leads",
        id="leads-per-day",
    )


def funnel_charts(rows: list[funnel.FunnelRow], names: dict[str, str], by: str) -> list[Chart]:
    """People at each stage per group, and each group's lead-to-customer rate with its interval."""
    labels = [names.get(r.group, r.group) for r in rows]
    stages = Chart(
        title=f"Leads, prospects and customers by {by}",
        x=labels,
        series=[
            Series("Leads", [r.leads for r in rows]),
            Series("Prospects", [r.prospects for r in rows]),
            Series("Customers", [r.customers for r in rows]),
        ],
        kind="bar",
        x_title=by.capitalize(),
        y_title="People",
        id="funnel-stages",
    )
    rates = Chart(
        title=f"Lead → customer by {by}",
        x=labels,
        series=[
            Series(
                "Lead → customer",
                [r.lead_to_customer.value for r in rows],
                low=[r.lead_to_customer.low for r in rows],
                high=[r.lead_to_customer.high for r in rows],
            )
        ],
        kind="bar",
        fmt="percent",
        x_title=by.capitalize(),
        id="funnel-rates",
        notes=["Each rate with its 95 % interval."],
    )
    return [stages, rates]


# Forms ---------------------------------------------------------------------------------


@router.get("/leads/forms")
async def forms_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[dict[str, Any]]:
        counts: dict[str | None, int] = dict(
            conn.execute(
                select(leads.c.form_id, func.count())
                .where(leads.c.business_id == caller.business_id)
                .group_by(leads.c.form_id)
            ).all()
        )
        return [
            {"form": f, "leads": counts.get(f.id, 0)}
            for f in forms.list_forms(conn, business_id=caller.business_id)
        ]

    first, since = _since()

    def per_day(conn: Connection) -> dict[str, dict[str, int]]:
        return submissions.leads_per_day(
            conn, business_id=caller.business_id, since=since, by="form"
        )

    rows = await store_work.read(state, work)
    names = {row["form"].id: row["form"].spec.slug for row in rows}
    chart = per_day_chart(
        f"New leads per day by form, last {CHART_DAYS} days (UTC)",
        await store_work.read(state, per_day),
        names,
        first=first,
        last=utcnow().date(),
    )
    return await arender(request, "leads/forms.html", caller=caller, rows=rows, chart=chart)


def _builder(
    request: Request,
    caller: Caller,
    state: State,
    *,
    spec: dict[str, Any],
    form: forms.Form | None,
    problems: list[FieldProblem],
    status: int = 200,
    notice: str | None = None,
) -> Response:
    with state.store.read() as conn:
        pools = magnets.list_pools(conn, business_id=caller.business_id)
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        parts = problem.field.split(".")
        where = ".".join(parts[:2]) if parts[0] in ("fields", "consents") else parts[0]
        by_field.setdefault(where, []).append(problem.reason)
    # Problems of fields and consents are reported by key, not by position.
    for kind, items, key in (
        ("fields", spec["fields"], "key"),
        ("consents", spec["consents"], "purpose"),
    ):
        for index, item in enumerate(items):
            found = by_field.pop(f"{kind}.{index}", None)
            if found:
                by_field.setdefault(f"{kind}.{item[key]}", []).extend(found)
    return render(
        request,
        "leads/builder.html",
        caller=caller,
        spec=spec,
        form=form,
        problems=by_field,
        all_problems=problems,
        kinds=FIELD_KINDS,
        languages=list(LANGUAGES),
        pools=pools,
        status=status,
        notice=notice,
    )


@router.get("/leads/forms/new")
async def new_form_page(request: Request, state: State, caller: Manager) -> Response:
    return await store_work.run(
        lambda: _builder(request, caller, state, spec=builder.BLANK_SPEC, form=None, problems=[])
    )


@router.get("/leads/forms/{form_id}/edit")
async def edit_form_page(request: Request, state: State, caller: Manager, form_id: str) -> Response:
    def work() -> Response:
        with state.store.read() as conn:
            form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
        return _builder(request, caller, state, spec=builder.spec_of(form), form=form, problems=[])

    return await store_work.run(work)


async def _save_builder(
    request: Request, state: State, caller: Caller, form_id: str | None
) -> Response:
    posted = await request.form()
    spec, problems = builder.posted_spec(posted)
    adding = bool(posted.get("new_field_key") or posted.get("new_consent_purpose"))
    saving = posted.get("action") == "save" and not adding

    def work() -> Response:
        form = None
        if form_id is not None:
            with state.store.read() as conn:
                form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
        data, invalid = builder.validated(spec)
        found = builder.unique_problems(problems + invalid)
        if saving and not found and data is not None:
            try:
                with state.store.write() as conn:
                    if form is None:
                        form = forms.create_form(conn, business_id=caller.business_id, data=data)
                        store_work.record(
                            conn,
                            caller,
                            "lead_form.create",
                            asset=("lead_form", form.id),
                            slug=data.slug,
                        )
                    else:
                        form = forms.update_form(
                            conn, business_id=caller.business_id, form_id=form.id, data=data
                        )
                        store_work.record(
                            conn,
                            caller,
                            "lead_form.update",
                            asset=("lead_form", form.id),
                            version=form.version,
                        )
            except InvalidInput as exc:
                found = exc.problems
            except AccordError as exc:
                found = [FieldProblem("form", str(exc))]
            else:
                return redirect(
                    request,
                    f"/leads/forms/{form.id}",
                    notice=f"Saved as version {form.version}",
                )
        notice = None if found else ("Added" if adding else "No problems found")
        return _builder(
            request,
            caller,
            state,
            spec=spec,
            form=form,
            problems=found,
            status=400 if found else 200,
            notice=notice,
        )

    return await store_work.run(work)


@router.post("/leads/forms/new")
async def create_form_page(request: Request, state: State, caller: Manager) -> Response:
    return await _save_builder(request, state, caller, None)


@router.post("/leads/forms/{form_id}/edit")
async def update_form_page(
    request: Request, state: State, caller: Manager, form_id: str
) -> Response:
    return await _save_builder(request, state, caller, form_id)


@router.get("/leads/forms/{form_id}")
async def form_page(
    request: Request, state: State, caller: Reader, email: Email, form_id: str
) -> Response:
    first, since = _since()

    def work(conn: Connection) -> dict[str, Any]:
        form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
        pools = {
            p.id: p
            for p in magnets.list_pools(conn, business_id=caller.business_id)
            if p.id == form.spec.coupon_pool_id
        }
        return {
            "form": form,
            "url": f"{email.mailer.base_url}/l/{form.spec.slug}",
            "snippet": forms.embed_snippet(form, base_url=email.mailer.base_url),
            "pool": pools.get(form.spec.coupon_pool_id or ""),
            "download_ready": bool(form.spec.download_name)
            and magnets.magnet_path(
                email.settings.data_dir,
                business_id=caller.business_id,
                name=form.spec.download_name or "",
            ).is_file(),
            "rows": submissions.list_leads(conn, business_id=caller.business_id, form_id=form.id),
            "per_day": submissions.leads_per_day(
                conn, business_id=caller.business_id, since=since, by="form", form_id=form.id
            ),
        }

    view = await store_work.read(state, work)
    chart = per_day_chart(
        f"New leads per day, last {CHART_DAYS} days (UTC)",
        view.pop("per_day"),
        {form_id: "Leads"},
        first=first,
        last=utcnow().date(),
    )
    return await arender(request, "leads/form_detail.html", caller=caller, chart=chart, **view)


# Leads ---------------------------------------------------------------------------------


@router.get("/leads/people")
async def leads_page(
    request: Request,
    state: State,
    caller: Reader,
    stage: str = "",
    page: int = 1,
) -> Response:
    page = max(page, 1)

    def work(conn: Connection) -> list[dict[str, Any]]:
        return submissions.list_leads(
            conn,
            business_id=caller.business_id,
            stage=stage if stage in STAGES else None,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )

    first, since = _since()

    def per_day(conn: Connection) -> dict[str, dict[str, int]]:
        return submissions.leads_per_day(
            conn, business_id=caller.business_id, since=since, by="source"
        )

    rows = await store_work.read(state, work)
    chart = per_day_chart(
        f"New leads per day by source, last {CHART_DAYS} days (UTC)",
        await store_work.read(state, per_day),
        SOURCES,
        first=first,
        last=utcnow().date(),
    )
    return await arender(
        request,
        "leads/people.html",
        caller=caller,
        rows=rows,
        chart=chart,
        stage=stage,
        stages=STAGES,
        page=page,
        more=len(rows) == PAGE_SIZE,
    )


@router.get("/leads/people/{lead_id}")
async def lead_page(request: Request, state: State, caller: Reader, lead_id: str) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        return submissions.lead_view(conn, business_id=caller.business_id, lead_id=lead_id)

    lead = await store_work.read(state, work)
    return await arender(request, "leads/lead.html", caller=caller, lead=lead, stages=STAGES)


@router.post("/leads/people/{lead_id}/stage")
async def stage_page(
    request: Request,
    state: State,
    caller: Manager,
    lead_id: str,
    stage: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    where = f"/leads/people/{lead_id}"

    def exists(conn: Connection) -> None:
        submissions.lead_view(conn, business_id=caller.business_id, lead_id=lead_id)

    await store_work.read(state, exists)
    if stage not in ("prospect", "customer") or not reason.strip():
        return redirect(request, where, error="Choose prospect or customer and give a reason")

    def work(conn: Connection) -> None:
        service.set_stage(
            conn,
            business_id=caller.business_id,
            lead_id=lead_id,
            stage=stage,
            reason=reason.strip(),
        )

    try:
        await store_work.write(state, work)
    except Conflict as exc:
        return redirect(request, where, error=str(exc))
    return redirect(request, where, notice=f"The lead is now a {stage}")


# Funnel --------------------------------------------------------------------------------


@router.get("/leads/funnel")
async def funnel_page(
    request: Request, state: State, caller: Reader, by: str = "source"
) -> Response:
    if by not in ("source", "campaign", "form", "import"):
        by = "source"

    def work(conn: Connection) -> dict[str, Any]:
        names: dict[str, str] = {}
        if by == "form":
            names = {
                f.id: f.spec.slug for f in forms.list_forms(conn, business_id=caller.business_id)
            }
        elif by == "import":
            names = {
                i["id"]: i["name"]
                for i in imports.list_imports(conn, business_id=caller.business_id)
            }
        return {
            "rows": funnel.funnel(conn, business_id=caller.business_id, by=by),
            "names": names,
        }

    view = await store_work.read(state, work)
    charts = funnel_charts(view["rows"], view["names"], by)
    return await arender(request, "leads/funnel.html", caller=caller, by=by, charts=charts, **view)


@router.post("/leads/funnel/spend")
async def spend_page(
    request: Request,
    state: State,
    caller: Manager,
    campaign: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = SpendIn(campaign=campaign.strip(), amount=float(amount))
    except (ValueError, ValidationError):
        return redirect(
            request,
            "/leads/funnel?by=campaign",
            error="Give the campaign's utm_campaign and an amount of 0 or more",
        )

    def work(conn: Connection) -> None:
        funnel.set_spend(conn, business_id=caller.business_id, data=data)

    await store_work.write(state, work)
    return redirect(request, "/leads/funnel?by=campaign", notice=f"Spend of {data.campaign} saved")


# Coupons and downloads -----------------------------------------------------------------


@router.get("/leads/magnets")
async def magnets_page(request: Request, state: State, caller: Reader, email: Email) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        found = forms.list_forms(conn, business_id=caller.business_id)
        return {
            "pools": magnets.list_pools(conn, business_id=caller.business_id),
            "files": magnets.magnet_files(email.settings.data_dir, business_id=caller.business_id),
            "forms": found,
        }

    return await arender(
        request, "leads/magnets.html", caller=caller, **await store_work.read(state, work)
    )


@router.post("/leads/magnets/pools")
async def pool_page(
    request: Request,
    state: State,
    caller: Manager,
    name: Annotated[str, Form()] = "",
    codes: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = PoolIn(name=name.strip(), codes=[c for c in codes.split() if c])
    except ValidationError:
        return redirect(request, "/leads/magnets", error="Give the pool a name and some codes")

    def work(conn: Connection) -> None:
        magnets.create_pool(conn, business_id=caller.business_id, data=data)

    try:
        await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/leads/magnets", error=_text(exc.problems))
    return redirect(
        request, "/leads/magnets", notice=f"Pool {data.name} made with {len(data.codes)} codes"
    )


@router.post("/leads/magnets/files")
async def upload_page(request: Request, caller: Manager, email: Email) -> Response:
    posted = await request.form()
    upload = posted.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return redirect(request, "/leads/magnets", error="Choose a file to upload")
    name = str(posted.get("name", "")).strip() or (upload.filename or "")
    if not name.replace(".", "").replace("-", "").replace("_", "").isalnum() or len(name) > 100:
        return redirect(
            request, "/leads/magnets", error="File names use letters, digits, '.', '-' and '_'"
        )
    body = await upload.read(MAX_MAGNET_BYTES + 1)
    if len(body) > MAX_MAGNET_BYTES:
        return redirect(
            request, "/leads/magnets", error=f"A download may hold at most {MAX_MAGNET_BYTES} bytes"
        )
    path = magnets.magnet_path(email.settings.data_dir, business_id=caller.business_id, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    await store_work.run(path.write_bytes, body)
    return redirect(request, "/leads/magnets", notice=f"{name} uploaded")


# Imports -------------------------------------------------------------------------------


@router.get("/leads/import")
async def imports_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[dict[str, Any]]:
        return imports.list_imports(conn, business_id=caller.business_id)

    return await arender(
        request,
        "leads/import.html",
        caller=caller,
        imports=await store_work.read(state, work),
        lead_fields=LEAD_FIELDS,
        report=None,
        posted={},
    )


@router.post("/leads/import")
async def import_page(request: Request, state: State, caller: Manager) -> Response:
    posted = await request.form()
    kind = str(posted.get("kind", ""))
    name = str(posted.get("name", "")).strip()
    region = str(posted.get("phone_region", "")).strip().upper() or None
    mapping = {
        f: str(posted.get(f"map_{f}", "")).strip()
        for f in LEAD_FIELDS
        if str(posted.get(f"map_{f}", "")).strip()
    }
    problems: list[FieldProblem] = []
    spend: float | None = None
    raw_spend = str(posted.get("spend", "")).strip()
    if raw_spend:
        try:
            spend = float(raw_spend)
            if spend < 0:
                raise ValueError
        except ValueError:
            problems.append(FieldProblem("spend", "must be a number of 0 or more"))
    if kind not in ("lead_ads", "csv"):
        problems.append(FieldProblem("kind", "choose Lead Ads or CSV"))
    if not name or len(name) > 200:
        problems.append(FieldProblem("name", "name the import (up to 200 characters)"))
    if region is not None and not (len(region) == 2 and region.isalpha()):
        problems.append(FieldProblem("phone_region", "use a two-letter country code"))
    upload = posted.get("file")
    raw = b""
    if not isinstance(upload, UploadFile) or not upload.filename:
        problems.append(FieldProblem("file", "choose the file to import"))
    else:
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            problems.append(FieldProblem("file", f"at most {MAX_IMPORT_BYTES} bytes"))
    report: imports.LeadImport | None = None
    if not problems:
        try:
            rows = list(read_lead_ads(raw) if kind == "lead_ads" else read_mapped_csv(raw, mapping))
            report = await store_work.run(
                lambda: imports.import_leads(
                    state.store,
                    business_id=caller.business_id,
                    rows=rows,
                    kind=kind,
                    name=name,
                    spend=spend,
                    gate=state.gate,
                    limits=state.limits,
                    phone_region=region,
                )
            )
        except InvalidInput as exc:
            problems = exc.problems

    def work(conn: Connection) -> list[dict[str, Any]]:
        return imports.list_imports(conn, business_id=caller.business_id)

    return await arender(
        request,
        "leads/import.html",
        caller=caller,
        imports=await store_work.read(state, work),
        lead_fields=LEAD_FIELDS,
        report=report,
        posted={"kind": kind, "name": name, "spend": raw_spend, "mapping": mapping},
        error=_text(problems) if problems else None,
        status=400 if problems else 200,
    )


def _text(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)
