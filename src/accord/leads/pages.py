"""Lead pages of the admin UI: forms and their builder, leads, funnel, coupons and imports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection, func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from accord.core.errors import AccordError, Conflict, FieldProblem, InvalidInput
from accord.leads import forms, funnel, imports, magnets, service, submissions
from accord.leads.i18n import LANGUAGES
from accord.leads.lead_ads import LEAD_FIELDS, MAX_BYTES, read_lead_ads, read_mapped_csv
from accord.leads.lifecycle import STAGES
from accord.leads.models import (
    FormIn,
    PoolIn,
    SpendIn,
    leads,
)
from accord.web import store_work
from accord.web.auth import Caller, requires
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
NOT_PRETICKED = "a consent box must start unticked: only an active choice is consent"


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

    rows = await store_work.read(state, work)
    return await arender(request, "leads/forms.html", caller=caller, rows=rows)


BLANK_SPEC: dict[str, Any] = {
    "slug": "",
    "languages": ["en"],
    "title": {},
    "welcome": {},
    "thank_you": {},
    "fields": [
        {"key": "email", "kind": "email", "label": {"en": "Email"}, "required": True},
        {"key": "name", "kind": "name", "label": {"en": "Name"}, "required": False},
        {"key": "utm_source", "kind": "hidden", "label": {}, "required": False},
        {"key": "utm_campaign", "kind": "hidden", "label": {}, "required": False},
    ],
    "consents": [
        {"purpose": "marketing", "label": {"en": "Email me news and offers"}},
    ],
    "privacy_policy_url": "",
    "next_url": "",
    "double_opt_in": True,
    "list_id": "",
    "coupon_pool_id": "",
    "download_name": "",
    "from_address": "",
    "phone_region": "",
}


def _spec_of(form: forms.Form) -> dict[str, Any]:
    spec: dict[str, Any] = form.spec.model_dump(mode="json")
    for key in ("next_url", "list_id", "coupon_pool_id", "download_name", "phone_region"):
        spec[key] = spec[key] or ""
    return spec


def _texts(form: FormData, prefix: str, languages: list[str]) -> dict[str, str]:
    found = {lang: str(form.get(f"{prefix}_{lang}", "")).strip() for lang in languages}
    return {lang: value for lang, value in found.items() if value}


def _column(form: FormData, name: str) -> list[str]:
    return [str(v) for v in form.getlist(name)]


def _posted_spec(form: FormData) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The builder's fields as a form definition, and the problems only the page can see
    (a pre-ticked consent box, a new field whose key is taken)."""
    problems: list[FieldProblem] = []
    languages = [
        lang.strip().lower()
        for lang in str(form.get("languages", "")).replace(",", " ").split()
        if lang.strip()
    ] or ["en"]
    languages = list(dict.fromkeys(languages))
    removed = set(_column(form, "remove_field"))
    required = set(_column(form, "field_required"))
    labels = {lang: _column(form, f"field_label_{lang}") for lang in languages}
    fields: list[dict[str, Any]] = []
    keys, kinds, options = (
        _column(form, "field_key"),
        _column(form, "field_kind"),
        _column(form, "field_options"),
    )
    for index, (key, kind) in enumerate(zip(keys, kinds, strict=False)):
        key = key.strip()
        if not key or key in removed:
            continue
        label = {
            lang: labels[lang][index].strip()
            for lang in languages
            if index < len(labels[lang]) and labels[lang][index].strip()
        }
        choices = options[index] if index < len(options) else ""
        fields.append(
            {
                "key": key,
                "kind": kind,
                "label": label,
                "required": key in required,
                "options": [o.strip() for o in choices.splitlines() if o.strip()],
            }
        )
    new_key = str(form.get("new_field_key", "")).strip()
    if new_key:
        if any(f["key"] == new_key for f in fields):
            problems.append(FieldProblem(f"fields.{new_key}", "a field with this key exists"))
        else:
            kind = str(form.get("new_field_kind", "text"))
            fields.append({"key": new_key, "kind": kind, "label": {}, "required": False})
    removed_consents = set(_column(form, "remove_consent"))
    consent_required = set(_column(form, "consent_required"))
    consent_labels = {lang: _column(form, f"consent_label_{lang}") for lang in languages}
    starts = _column(form, "consent_start")
    consents: list[dict[str, Any]] = []
    for index, purpose in enumerate(_column(form, "consent_purpose")):
        purpose = purpose.strip()
        if not purpose or purpose in removed_consents:
            continue
        start = starts[index] if index < len(starts) else "unticked"
        if start != "unticked":
            problems.append(FieldProblem(f"consents.{purpose}", NOT_PRETICKED))
        consents.append(
            {
                "purpose": purpose,
                "label": {
                    lang: consent_labels[lang][index].strip()
                    for lang in languages
                    if index < len(consent_labels[lang]) and consent_labels[lang][index].strip()
                },
                "required": purpose in consent_required,
                "start": start,
            }
        )
    new_purpose = str(form.get("new_consent_purpose", "")).strip()
    if new_purpose:
        if any(c["purpose"] == new_purpose for c in consents):
            problems.append(FieldProblem(f"consents.{new_purpose}", "this purpose is listed"))
        else:
            consents.append({"purpose": new_purpose, "label": {}, "required": False})
    spec = {
        "slug": str(form.get("slug", "")).strip(),
        "languages": languages,
        "title": _texts(form, "title", languages),
        "welcome": _texts(form, "welcome", languages),
        "thank_you": _texts(form, "thank_you", languages),
        "fields": fields,
        "consents": consents,
        "privacy_policy_url": str(form.get("privacy_policy_url", "")).strip(),
        "next_url": str(form.get("next_url", "")).strip(),
        "double_opt_in": form.get("double_opt_in") == "on",
        "list_id": str(form.get("list_id", "")).strip(),
        "coupon_pool_id": str(form.get("coupon_pool_id", "")).strip(),
        "download_name": str(form.get("download_name", "")).strip(),
        "from_address": str(form.get("from_address", "")).strip(),
        "phone_region": str(form.get("phone_region", "")).strip().upper(),
    }
    if not spec["privacy_policy_url"]:
        problems.append(
            FieldProblem("privacy_policy_url", "a link to the privacy policy is required")
        )
    if not spec["title"]:
        problems.append(FieldProblem("title", "give the page a title"))
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        problems.append(
            FieldProblem("languages", f"not supported: {unknown}; use {sorted(LANGUAGES)}")
        )
    return spec, problems


def _validated(spec: dict[str, Any]) -> tuple[FormIn | None, list[FieldProblem]]:
    body = {k: v for k, v in spec.items() if v != "" or k in ("slug", "from_address")}
    body["consents"] = [
        {k: v for k, v in c.items() if k != "start"} for c in spec.get("consents", [])
    ]
    try:
        return FormIn.model_validate(body), []
    except ValidationError as exc:
        return None, [
            FieldProblem(".".join(str(p) for p in e["loc"]) or "form", e["msg"])
            for e in exc.errors()
        ]


def _unique(problems: list[FieldProblem]) -> list[FieldProblem]:
    seen: dict[tuple[str, str], FieldProblem] = {}
    for problem in problems:
        seen.setdefault((problem.field, problem.reason), problem)
    return list(seen.values())


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
    return await run_in_threadpool(
        lambda: _builder(request, caller, state, spec=BLANK_SPEC, form=None, problems=[])
    )


@router.get("/leads/forms/{form_id}/edit")
async def edit_form_page(request: Request, state: State, caller: Manager, form_id: str) -> Response:
    def work() -> Response:
        with state.store.read() as conn:
            form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
        return _builder(request, caller, state, spec=_spec_of(form), form=form, problems=[])

    return await run_in_threadpool(work)


async def _save_builder(
    request: Request, state: State, caller: Caller, form_id: str | None
) -> Response:
    posted = await request.form()
    spec, problems = _posted_spec(posted)
    adding = bool(posted.get("new_field_key") or posted.get("new_consent_purpose"))
    saving = posted.get("action") == "save" and not adding

    def work() -> Response:
        form = None
        if form_id is not None:
            with state.store.read() as conn:
                form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
        data, invalid = _validated(spec)
        found = _unique(problems + invalid)
        if saving and not found and data is not None:
            try:
                with state.store.write() as conn:
                    if form is None:
                        form = forms.create_form(conn, business_id=caller.business_id, data=data)
                    else:
                        form = forms.update_form(
                            conn, business_id=caller.business_id, form_id=form.id, data=data
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

    return await run_in_threadpool(work)


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
        }

    return await arender(
        request, "leads/form_detail.html", caller=caller, **await store_work.read(state, work)
    )


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

    rows = await store_work.read(state, work)
    return await arender(
        request,
        "leads/people.html",
        caller=caller,
        rows=rows,
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

    return await arender(
        request, "leads/funnel.html", caller=caller, by=by, **await store_work.read(state, work)
    )


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
    await run_in_threadpool(path.write_bytes, body)
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
            report = await run_in_threadpool(
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
