"""Consent routes: the public ones cmp.js calls (write key) and the admin ones (/api/consent)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from accord.collect.service import decode_body, write_key_from
from accord.consent import (
    abtest,
    analytics,
    cmp_config,
    config,
    export,
    gvl,
    ledger,
    proof,
    service,
)
from accord.consent.geo import country_from, region_from
from accord.consent.models import (
    ConsentIn,
    GeoRuleIn,
    NoticeIn,
    PolicyIn,
    PropertyIn,
    PurposeIn,
    VendorIn,
)
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.engine.connection import connect
from accord.leads.subjects import anonymous_ids_of_email
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited
from accord.web.cmp import default_texts, translation_languages
from accord.web.downloads import attachment
from accord.web.errors import json_response
from accord.web.state import AppState, State

public_router = APIRouter(tags=["consent"])
admin_router = APIRouter(prefix="/api/consent", tags=["consent admin"])

M = TypeVar("M", bound=BaseModel)
Manage = Annotated[Caller, Depends(requires("consent.manage"))]
Read = Annotated[Caller, Depends(requires("consent.read"))]
_PUBLIC_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid decision; `problems` names each field and reason"},
    401: {"description": "Unknown or missing write key"},
    413: {"description": "Body over the limit (32 KB by default)"},
    415: {"description": "Content-Type is not application/json"},
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined, for an OpenAPI request body."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def parse(model: type[M], payload: Any) -> M:
    """Validate a JSON body into `model`, reporting every problem in the error shape."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [
            FieldProblem(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors()
        ]
        raise InvalidInput(problems) from exc


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _visitor_place(request: Request, state: AppState) -> tuple[str | None, str | None]:
    settings = state.settings
    country = country_from(
        request.headers, _client_ip(request), country_header=settings.consent_country_header
    )
    region = region_from(request.headers, region_header=settings.consent_region_header)
    return country, region


# --- Public ----------------------------------------------------------------------------
# The public routes and the engine reports are plain `def`: FastAPI runs them in the
# thread pool, where the write-key lookup, the store and DuckDB may block.


async def raw_body(request: Request, state: State) -> bytes:
    """The request's bytes, read on the event loop for a plain `def` route, and refused as
    soon as they pass `ACCORD_MAX_CONSENT_BYTES`."""
    return await read_limited(request, limit=state.settings.max_consent_bytes)


@public_router.get(
    "/v1/consent/config",
    summary="The banner's configuration for a visitor",
    responses={401: _PUBLIC_ERRORS[401], 404: {"description": "Unknown property"}},
)
def consent_config(
    request: Request,
    state: State,
    write_key: Annotated[str | None, Query(alias="writeKey")] = None,
    property_key: Annotated[str, Query(alias="property", min_length=1)] = "",
    lang: str | None = None,
    anonymous_id: Annotated[str | None, Query(alias="anonymousId", max_length=255)] = None,
) -> Response:
    """Regime, notice in the visitor's language (else Accept-Language), purposes, vendors.

    The country comes from the proxy's header, else the offline IP table; `Sec-GPC: 1`
    sets `gpc`. With `anonymousId` the A/B variant is the visitor's sticky one.
    """
    source = state.write_keys.resolve(
        write_key or write_key_from(request.headers.get("authorization"), None),
        origin=request.headers.get("origin"),
    )
    country, region = _visitor_place(request, state)
    visitor = cmp_config.Visitor(
        country=country,
        region=region,
        gpc=request.headers.get("sec-gpc", "").strip() == "1",
        language=lang,
        accept_language=request.headers.get("accept-language"),
        anonymous_id=anonymous_id,
    )

    with state.store.read() as conn:
        body = cmp_config.public_config(
            conn, business_id=source.business_id, property_key=property_key, visitor=visitor
        )
    _add_gpc_notice(body["notice"])
    headers = {
        "Vary": f"Accept-Language, Sec-GPC, {state.settings.consent_country_header}",
        "Cache-Control": f"{'private' if anonymous_id else 'public'}, max-age=300",
    }
    return json_response(body, headers=headers)


def _add_gpc_notice(notice: dict[str, Any]) -> None:
    """The banner tells a visitor who sends GPC that opting in overrides the signal (CCPA
    regulations §7025(c)(3)): in the notice's language from Accord's shipped texts, else
    in English."""
    texts = notice["texts"]
    if texts.get("gpc_notice"):
        return
    language = str(notice["language"]).lower()
    shipped = translation_languages()
    for candidate in (language, language.split("-")[0], "en"):
        if candidate in shipped:
            texts["gpc_notice"] = default_texts(candidate)["gpc_notice"]
            return


@public_router.post(
    "/v1/consent",
    summary="Record a consent decision in the ledger",
    responses=_PUBLIC_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ConsentIn)}},
        }
    },
)
def post_consent(
    request: Request, state: State, body: Annotated[bytes, Depends(raw_body)]
) -> Response:
    """Append the decision (hash-chained) and return the record id, its hash and the state."""
    payload = decode_body(
        body,
        content_type=request.headers.get("content-type"),
        content_encoding=request.headers.get("content-encoding"),
        max_bytes=state.settings.max_consent_bytes,
    )
    source = state.write_keys.resolve(
        write_key_from(request.headers.get("authorization"), payload),
        origin=request.headers.get("origin"),
    )
    decision = parse(ConsentIn, payload)
    country, region = _visitor_place(request, state)
    notice = decision.notice
    with state.store.write() as conn:
        recorded = service.record_consent(
            conn,
            business_id=source.business_id,
            property_key=decision.property,
            purposes=decision.purposes,
            source=decision.source,
            anonymous_id=decision.anonymous_id,
            user_id=decision.user_id,
            language=decision.language,
            regime=decision.regime,
            notice_id=notice.id if notice else None,
            notice_version=notice.version if notice else None,
            variant=notice.variant if notice else None,
            text_hash=notice.text_hash if notice else None,
            vendors=decision.vendors,
            special_features=decision.special_features,
            legitimate_interest=decision.legitimate_interest,
            gpc=decision.gpc or request.headers.get("sec-gpc", "").strip() == "1",
            tc_string=decision.tc_string,
            recorded_at=decision.timestamp,
            country=country,
            region=region,
            ip=_client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    answer = {
        "record_id": recorded.record_id,
        "hash": recorded.hash,
        "state": recorded.state.to_json(),
    }
    return json_response(answer)


@public_router.get(
    "/v1/consent/{subject}",
    summary="The current consent state of a subject (anonymousId or userId)",
    responses={401: _PUBLIC_ERRORS[401], 404: {"description": "No decision recorded"}},
)
def get_consent(
    subject: str,
    request: Request,
    state: State,
    write_key: Annotated[str | None, Query(alias="writeKey")] = None,
) -> Response:
    source = state.write_keys.resolve(
        write_key_from(request.headers.get("authorization"), None) or write_key,
        origin=request.headers.get("origin"),
    )

    with state.store.read() as conn:
        found = service.subject_state(conn, business_id=source.business_id, subject=subject)
    if found is None:
        raise NotFound(f"consent of {subject!r}")
    return json_response(found.to_json())


# --- Admin -----------------------------------------------------------------------------


JsonBody = Annotated[dict[str, Any], Body()]


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that takes `model` as JSON (validated by `parse`, errors 400)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }


@admin_router.get("/properties", summary="List properties (sites and apps)")
async def list_properties(state: State, caller: Read) -> Any:
    return await store_work.read(
        state, lambda c: config.list_properties(c, business_id=caller.business_id)
    )


@admin_router.post(
    "/properties",
    summary="Create a property with default purposes and notice",
    openapi_extra=body_of(PropertyIn),
)
async def create_property(state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(PropertyIn, body)
    return await store_work.audited(
        state,
        caller,
        "consent_property.create",
        lambda c: config.create_property(c, business_id=caller.business_id, spec=spec),
        asset=("consent_property", spec.key),
        spec=spec.model_dump(mode="json"),
    )


@admin_router.put(
    "/properties/{key}", summary="Change a property's settings", openapi_extra=body_of(PropertyIn)
)
async def update_property(key: str, state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(PropertyIn, {**body, "key": key})
    return await store_work.audited(
        state,
        caller,
        "consent_property.update",
        lambda c: config.update_property(c, business_id=caller.business_id, spec=spec),
        asset=("consent_property", key),
        spec=spec.model_dump(mode="json"),
    )


@admin_router.get("/purposes", summary="List purposes")
async def list_purposes(state: State, caller: Read) -> Any:
    return await store_work.read(
        state, lambda c: config.list_purposes(c, business_id=caller.business_id)
    )


@admin_router.put(
    "/purposes/{key}", summary="Create or change a purpose", openapi_extra=body_of(PurposeIn)
)
async def save_purpose(key: str, state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(PurposeIn, {**body, "key": key})
    return await store_work.audited(
        state,
        caller,
        "consent_purpose.save",
        lambda c: config.save_purpose(c, business_id=caller.business_id, spec=spec),
        asset=("consent_purpose", key),
        spec=spec.model_dump(mode="json"),
    )


@admin_router.get("/vendors", summary="List vendors")
async def list_vendors(state: State, caller: Read) -> Any:
    return await store_work.read(
        state, lambda c: config.list_vendors(c, business_id=caller.business_id)
    )


@admin_router.put(
    "/vendors/{key}", summary="Create or change a vendor", openapi_extra=body_of(VendorIn)
)
async def save_vendor(key: str, state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(VendorIn, {**body, "key": key})
    return await store_work.audited(
        state,
        caller,
        "consent_vendor.save",
        lambda c: config.save_vendor(c, business_id=caller.business_id, spec=spec),
        asset=("consent_vendor", key),
        spec=spec.model_dump(mode="json"),
    )


@admin_router.post("/vendors/gvl", summary="Import vendors from an IAB Global Vendor List file")
async def import_gvl(
    request: Request,
    state: State,
    caller: Manage,
    tcf_ids: Annotated[str | None, Query(description="comma-separated vendor ids")] = None,
) -> Any:
    """The body is the GVL JSON (vendor-list.json); `tcf_ids` limits what is imported."""
    body = await read_limited(request, limit=state.settings.max_import_bytes)
    wanted = None
    if tcf_ids:
        try:
            wanted = {int(part) for part in tcf_ids.split(",") if part.strip()}
        except ValueError as exc:
            raise InvalidInput([FieldProblem("tcf_ids", "must be integers")]) from exc
    vendor_list = gvl.parse(body)
    count = await store_work.audited(
        state,
        caller,
        "consent_vendor.import_gvl",
        lambda c: config.import_gvl(
            c, business_id=caller.business_id, gvl=vendor_list, tcf_ids=wanted
        ),
        gvl_version=vendor_list.vendor_list_version,
        tcf_ids=sorted(wanted) if wanted else None,
    )
    return {"imported": count, "gvl_version": vendor_list.vendor_list_version}


@admin_router.get("/properties/{key}/notices", summary="Every published notice version")
async def list_notices(key: str, state: State, caller: Read) -> Any:
    return await store_work.read(
        state,
        lambda c: config.notice_versions(c, business_id=caller.business_id, property_key=key),
    )


@admin_router.post(
    "/properties/{key}/notices",
    summary="Publish a new notice version (one or more variants)",
    openapi_extra=body_of(NoticeIn),
)
async def publish_notice(key: str, state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(NoticeIn, body)
    return await store_work.audited(
        state,
        caller,
        "consent_notice.publish",
        lambda c: config.publish_notice(
            c, business_id=caller.business_id, property_key=key, spec=spec
        ),
        asset=("consent_property", key),
        spec=spec.model_dump(mode="json"),
    )


@admin_router.get("/geo-rules", summary="The business's geo rules over the defaults")
async def list_geo_rules(state: State, caller: Read) -> Any:
    def work(conn: Any) -> Any:
        return {
            "rules": config.geo_rules(conn, business_id=caller.business_id),
            "effective": config.effective_geo_rules(conn, business_id=caller.business_id),
        }

    return await store_work.read(state, work)


@admin_router.put(
    "/geo-rules/{region}",
    summary="Set the regime of a country or region",
    openapi_extra=body_of(GeoRuleIn),
)
async def set_geo_rule(region: str, state: State, caller: Manage, body: JsonBody) -> Any:
    rule = parse(GeoRuleIn, {**body, "region": region})
    await store_work.audited(
        state,
        caller,
        "consent_geo_rule.set",
        lambda c: config.set_geo_rule(
            c, business_id=caller.business_id, region=rule.region, regime=rule.regime
        ),
        region=rule.region,
        regime=rule.regime,
    )
    return rule.model_dump()


@admin_router.delete("/geo-rules/{region}", summary="Remove a geo rule (the default applies)")
async def delete_geo_rule(region: str, state: State, caller: Manage) -> Any:
    removed = await store_work.audited(
        state,
        caller,
        "consent_geo_rule.delete",
        lambda c: config.delete_geo_rule(c, business_id=caller.business_id, region=region),
        region=region,
    )
    if not removed:
        raise NotFound(f"geo rule {region!r}")
    return {"deleted": region}


@admin_router.get("/policy", summary="Collection policy: event → purpose, anonymous counting")
async def get_policy(state: State, caller: Read) -> Any:
    return (
        await store_work.read(state, lambda c: config.get_policy(c, business_id=caller.business_id))
    ).model_dump()


@admin_router.put("/policy", summary="Set the collection policy", openapi_extra=body_of(PolicyIn))
async def set_policy(state: State, caller: Manage, body: JsonBody) -> Any:
    spec = parse(PolicyIn, body)
    saved = await store_work.audited(
        state,
        caller,
        "consent_policy.set",
        lambda c: config.set_policy(c, business_id=caller.business_id, spec=spec),
        spec=spec.model_dump(mode="json"),
    )
    return saved.model_dump()


@admin_router.get("/verify", summary="Verify the business's ledger hash chain")
async def verify(state: State, caller: Read) -> Any:
    return (
        await store_work.read(state, lambda c: ledger.verify(c, business_id=caller.business_id))
    ).to_json()


@admin_router.get("/subjects/{subject}/proof", summary="Proof of consent (JSON or HTML)")
async def subject_proof(
    subject: str,
    state: State,
    caller: Read,
    fmt: Annotated[str, Query(alias="format", description="json or html")] = "json",
) -> Response:
    if fmt not in ("json", "html"):
        raise InvalidInput([FieldProblem("format", "must be json or html")])

    def work(conn: Connection) -> dict[str, Any]:
        built = proof.build(conn, business_id=caller.business_id, subject=subject)
        if not built["records"] and "@" in subject:
            # A lead's consent is in the ledger under the anonymous id its form gave it.
            for anonymous_id in anonymous_ids_of_email(
                conn, business_id=caller.business_id, email=subject
            ):
                built = proof.build(conn, business_id=caller.business_id, subject=anonymous_id)
                if built["records"]:
                    break
        return built

    built = await store_work.read(state, work)
    if not built["records"]:
        raise NotFound(f"consent records of {subject!r}")
    if fmt == "html":
        return HTMLResponse(proof.render_html(built))
    return json_response(built)


@admin_router.get("/export", summary="CSV of the identifiers whose choice grants a purpose")
async def export_csv(
    state: State, caller: Read, purpose: Annotated[str, Query(min_length=1)]
) -> Response:
    rows = await store_work.read(
        state,
        lambda c: export.subjects_granting(c, business_id=caller.business_id, purpose=purpose),
    )
    await store_work.write(
        state,
        lambda c: store_work.record(c, caller, "consent.export", purpose=purpose, rows=len(rows)),
    )
    return StreamingResponse(
        export.to_csv(rows),
        media_type="text/csv",
        headers=attachment(f"consent-{purpose}.csv"),
    )


@admin_router.get("/analytics", summary="Opt-in rates per purpose and one dimension")
def opt_in_rates(
    state: State,
    caller: Read,
    by: Annotated[str, Query(description=" | ".join(analytics.DIMENSIONS))] = "purpose",
) -> Any:
    """Decisions, grants and opt-in rate per purpose and `by` (notice_version, variant,
    country, device, day, regime, source, or choice: first decision vs later change)."""
    if by not in analytics.DIMENSIONS:
        raise InvalidInput(
            [FieldProblem("by", f"must be one of {', '.join(analytics.DIMENSIONS)}")]
        )

    with state.store.read() as conn:
        table = analytics.decisions(conn, business_id=caller.business_id)
    return analytics.opt_in_rates(connect("duckdb://"), table, by=by)


@admin_router.get("/properties/{key}/abtest", summary="Banner A/B test: winner by significance")
def abtest_report(
    key: str,
    state: State,
    caller: Read,
    purpose: str = "marketing",
    version: int | None = None,
) -> Any:
    """Compares the variants of a notice version (default: the newest) on first decisions."""

    with state.store.read() as conn:
        prop = config.get_property(conn, business_id=caller.business_id, key=key)
        tested = version or max(
            (n["version"] for n in config.current_variants(conn, property_id=prop["id"])),
            default=0,
        )
        table = analytics.decisions(conn, business_id=caller.business_id)
    return abtest.evaluate(
        connect("duckdb://"), table, property_id=prop["id"], version=tested, purpose=purpose
    )
