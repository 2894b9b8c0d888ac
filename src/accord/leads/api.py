"""Lead routes: admin API (forms, coupons, magnets, imports) and the public landing pages."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from accord.core.errors import Conflict, FieldProblem, InvalidInput
from accord.leads import confirmation, forms, imports, magnets, service, submissions
from accord.leads import funnel as lead_funnel
from accord.leads.i18n import LANGUAGES, localised, pick_language, texts
from accord.leads.lead_ads import read_lead_ads, read_mapped_csv
from accord.leads.models import FormIn, PoolIn, ScoringIn, SpendIn, StageIn
from accord.leads.spam import HONEYPOT_FIELD
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited
from accord.web.email_wiring import Email
from accord.web.state import State

router = APIRouter()
admin = APIRouter(prefix="/api/leads", tags=["leads"])
public = APIRouter(prefix="/l", tags=["landing pages"])

Manage = Annotated[Caller, Depends(requires("leads.manage"))]
Read = Annotated[Caller, Depends(requires("leads.read"))]
MAX_FORM_BYTES = 64 * 1024
MAX_MAGNET_BYTES = 200 * 1024 * 1024


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@admin.post("/forms", status_code=201, summary="Create a form and its hosted landing page")
def create_form(data: FormIn, caller: Manage, state: State, email: Email) -> dict[str, Any]:
    with state.store.write() as conn:
        form = forms.create_form(conn, business_id=caller.business_id, data=data)
        store_work.record(
            conn, caller, "lead_form.create", asset=("lead_form", form.id), slug=data.slug
        )
    return {
        "id": form.id,
        "version": form.version,
        "url": f"{email.mailer.base_url}/l/{form.spec.slug}",
        "snippet": forms.embed_snippet(form, base_url=email.mailer.base_url),
    }


@admin.put("/forms/{form_id}", summary="Change a form (makes a new version)")
def update_form(form_id: str, data: FormIn, caller: Manage, state: State) -> dict[str, Any]:
    with state.store.write() as conn:
        form = forms.update_form(conn, business_id=caller.business_id, form_id=form_id, data=data)
        store_work.record(
            conn, caller, "lead_form.update", asset=("lead_form", form_id), version=form.version
        )
    return {"id": form.id, "version": form.version}


@admin.get("/forms/{form_id}/snippet", summary="HTML to embed the form in another site")
def snippet(form_id: str, caller: Read, state: State, email: Email) -> dict[str, str]:
    with state.store.read() as conn:
        form = forms.get_form(conn, business_id=caller.business_id, form_id=form_id)
    return {"snippet": forms.embed_snippet(form, base_url=email.mailer.base_url)}


@admin.get("/leads/{lead_id}", summary="A lead with its consents and coupons")
def lead(lead_id: str, caller: Read, state: State) -> dict[str, Any]:
    with state.store.read() as conn:
        return submissions.lead_view(conn, business_id=caller.business_id, lead_id=lead_id)


@admin.get("/leads", summary="A lead found by its email address")
def lead_by_email(
    caller: Read, state: State, email: Annotated[str, Query(min_length=3, max_length=320)]
) -> dict[str, Any]:
    with state.store.read() as conn:
        lead_id = submissions.lead_id_by_email(conn, business_id=caller.business_id, email=email)
        return submissions.lead_view(conn, business_id=caller.business_id, lead_id=lead_id)


@admin.put("/scoring", status_code=204, summary="Scoring rules, decay and thresholds")
def set_scoring(data: ScoringIn, caller: Manage, state: State) -> Response:
    with state.store.write() as conn:
        service.set_scoring(conn, business_id=caller.business_id, data=data)
    return Response(status_code=204)


@admin.get("/scoring", summary="The scoring rules in force")
def get_scoring(caller: Read, state: State) -> ScoringIn:
    with state.store.read() as conn:
        return service.scoring_config(conn, business_id=caller.business_id)


@admin.post("/leads/{lead_id}/stage", status_code=204, summary="Move a lead forward by hand")
def set_stage(lead_id: str, data: StageIn, caller: Manage, state: State) -> Response:
    with state.store.write() as conn:
        service.set_stage(
            conn,
            business_id=caller.business_id,
            lead_id=lead_id,
            stage=data.stage,
            reason=data.reason,
        )
    return Response(status_code=204)


@admin.put("/spend", status_code=204, summary="What a campaign's leads cost")
def set_spend(data: SpendIn, caller: Manage, state: State) -> Response:
    with state.store.write() as conn:
        lead_funnel.set_spend(conn, business_id=caller.business_id, data=data)
    return Response(status_code=204)


@admin.get("/funnel", summary="Conversion between stages, cost per lead and per customer")
def funnel(
    caller: Read,
    state: State,
    by: Annotated[Literal["source", "campaign", "form", "import"], Query()] = "source",
) -> list[dict[str, Any]]:
    with state.store.read() as conn:
        return [
            asdict(row) for row in lead_funnel.funnel(conn, business_id=caller.business_id, by=by)
        ]


@admin.post("/coupon-pools", status_code=201, summary="A pool of unique coupon codes")
def create_pool(data: PoolIn, caller: Manage, state: State) -> dict[str, str]:
    with state.store.write() as conn:
        return {"id": magnets.create_pool(conn, business_id=caller.business_id, data=data)}


@admin.post("/coupons/{code}/redeem", summary="Mark a coupon as used")
def redeem(code: str, caller: Manage, state: State) -> dict[str, Any]:
    with state.store.write() as conn:
        return magnets.redeem_coupon(conn, business_id=caller.business_id, code=code)


@admin.put("/magnets/{name}", status_code=204, summary="Upload a gated download")
async def upload_magnet(name: str, request: Request, caller: Manage, email: Email) -> Response:
    body = await read_limited(
        request,
        limit=MAX_MAGNET_BYTES,
        reason=f"a download may hold at most {MAX_MAGNET_BYTES} bytes",
    )
    if not name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidInput([FieldProblem("name", "use letters, digits, '.', '-' and '_'")])
    path = magnets.magnet_path(email.settings.data_dir, business_id=caller.business_id, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    await store_work.run(path.write_bytes, body)
    return Response(status_code=204)


@admin.post("/imports/lead-ads", summary="Import a Facebook / Instagram Lead Ads export")
async def import_lead_ads(
    request: Request,
    caller: Manage,
    state: State,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    spend: Annotated[float | None, Query(ge=0)] = None,
    phone_region: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> dict[str, Any]:
    raw = await read_limited(request, limit=state.settings.max_import_bytes)
    rows = list(read_lead_ads(raw))
    report = await store_work.run(
        imports.import_leads,
        state.store,
        business_id=caller.business_id,
        rows=rows,
        kind="lead_ads",
        name=name,
        spend=spend,
        gate=state.gate,
        limits=state.limits,
        phone_region=phone_region,
    )
    return asdict(report)


@admin.post("/imports/csv", summary="Import a CSV with a column mapping")
async def import_csv(
    request: Request,
    caller: Manage,
    state: State,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    mapping: Annotated[str, Query(description='JSON: {"email": "E-mail", "name": ...}')],
    spend: Annotated[float | None, Query(ge=0)] = None,
    phone_region: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> dict[str, Any]:
    try:
        parsed = orjson.loads(mapping)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([FieldProblem("mapping", f"malformed JSON: {exc}")]) from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise InvalidInput([FieldProblem("mapping", "must map lead fields to column names")])
    raw = await read_limited(request, limit=state.settings.max_import_bytes)
    rows = list(read_mapped_csv(raw, parsed))
    report = await store_work.run(
        imports.import_leads,
        state.store,
        business_id=caller.business_id,
        rows=rows,
        kind="csv",
        name=name,
        spend=spend,
        gate=state.gate,
        limits=state.limits,
        phone_region=phone_region,
    )
    return asdict(report)


# Public pages --------------------------------------------------------------------------


def _page_context(form: forms.Form, lang: str, **extra: Any) -> dict[str, Any]:
    spec = form.spec
    return {
        "lang": lang,
        "t": texts(lang),
        "form": spec,
        "title": localised(spec.title, lang),
        "welcome": localised(spec.welcome, lang) if spec.welcome else "",
        "label": lambda labels, key: localised(labels, lang) if labels else key,
        "honeypot": HONEYPOT_FIELD,
        "values": {},
        "problems": {},
        **extra,
    }


def _lang(request: Request, form: forms.Form) -> str:
    offered = [lang for lang in form.spec.languages if lang in LANGUAGES] or ["en"]
    return pick_language(
        request.query_params.get("lang"), request.headers.get("accept-language"), offered
    )


@public.get("/{slug}", response_class=HTMLResponse, summary="Hosted landing page")
def landing_page(slug: str, request: Request, state: State, email: Email) -> Response:
    with state.store.read() as conn:
        form = forms.form_by_slug(conn, slug=slug)
    lang = _lang(request, form)
    values = {k: v for k, v in request.query_params.items() if k.startswith("utm_")}
    return email.page(
        "leads/form.html",
        **_page_context(form, lang, values=values, embed=request.query_params.get("embed")),
    )


@public.post("/{slug}", response_class=HTMLResponse, summary="Submit a landing-page form")
async def submit(slug: str, request: Request, state: State, email: Email) -> Response:
    form = await store_work.read(state, partial(forms.form_by_slug, slug=slug))
    lang = _lang(request, form)
    wants_json = "application/json" in request.headers.get("accept", "")
    await read_limited(
        request,
        limit=MAX_FORM_BYTES,
        reason=f"a submission may hold at most {MAX_FORM_BYTES} bytes",
    )
    values: dict[str, list[str]] = {}
    for key, value in (await request.form()).multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    try:
        done = await submissions.submit_form(
            state.store,
            form=form,
            posted=submissions.Posted(
                values=values,
                lang=lang,
                ip=_client_ip(request),
                user_agent=request.headers.get("user-agent"),
                page_url=str(request.url),
            ),
            limiter=email.form_limiter,
            gate=state.gate,
            limits=state.limits,
            mailer=email.mailer,
            wiring=email.wiring,
        )
    except InvalidInput as exc:
        if wants_json:
            raise
        problems = {p.field: p.reason for p in exc.problems}
        # Only checkbox sets hold several values; any other field shows what was read.
        several = {f.key for f in form.spec.fields if f.kind == "checkboxes"}
        flat = {k: v if k in several else v[0] for k, v in values.items()}
        return email.page(
            "leads/form.html",
            status_code=400,
            **_page_context(form, lang, values=flat, problems=problems),
        )
    if wants_json:
        return Response(
            orjson.dumps({"lead_id": done.lead_id, "needs_confirmation": done.needs_confirmation}),
            media_type="application/json",
        )
    return email.page(
        "leads/thanks.html",
        **_page_context(
            form,
            lang,
            confirmed=done.confirmed,
            needs_confirmation=done.needs_confirmation,
            thank_you=localised(form.spec.thank_you, lang) if form.spec.thank_you else "",
            base_url=email.mailer.base_url,
        ),
    )


@public.get("/confirm/{token}", response_class=HTMLResponse, summary="Double opt-in link")
def confirm(token: str, request: Request, state: State, email: Email) -> Response:
    lead_id, lang = email.mailer.signer.loads_timed(
        "confirm",
        token,
        max_age_seconds=email.settings.confirmation_link_days * 86400,
        what="confirmation",
    )
    with state.store.write() as conn:
        confirmed = confirmation.confirm(
            conn,
            lead_id=str(lead_id),
            ip=_client_ip(request),
            wiring=email.wiring,
            signer=email.mailer.signer,
            lang=str(lang),
        )
    if confirmed.form is None:
        raise Conflict("this lead did not come from a form")
    return email.page(
        "leads/thanks.html",
        **_page_context(
            confirmed.form,
            str(lang),
            confirmed=confirmed,
            needs_confirmation=False,
            thank_you="",
            base_url=email.mailer.base_url,
        ),
    )


@public.get("/download/{token}", summary="A gated download through an expiring link")
def download(token: str, state: State, email: Email) -> Response:
    with state.store.read() as conn:
        path = magnets.download_target(
            conn,
            token=token,
            signer=email.mailer.signer,
            max_age_seconds=email.settings.download_link_hours * 3600,
            data_dir=email.settings.data_dir,
        )
    return FileResponse(path, filename=path.name)


router.include_router(admin)
router.include_router(public)
