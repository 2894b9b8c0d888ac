"""Consent set-up pages: the properties (sites and apps), their settings and notice versions.

The banner designer and texts are in `setup_notice`, purposes and vendors in
`setup_catalogue`, geo rules and the collection policy in `setup_rules`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection

from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.pages import setup_catalogue, setup_notice, setup_rules
from accord.consent.pages.setup_common import (
    Manage,
    Posted,
    Problems,
    Read,
    field,
    from_invalid,
    from_validation,
    optional_int,
    page,
)
from accord.consent.pages.setup_notice import versions_of
from accord.core.errors import InvalidInput
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, redirect

router = APIRouter(include_in_schema=False)
for area in (setup_notice, setup_catalogue, setup_rules):
    router.include_router(area.router)

nav = [
    # The properties are at /consent too; linking the longer address keeps this entry from
    # being marked current on every other page under /consent/.
    NavEntry("Properties", "/consent/properties", "consent.read", "Consent", 11),
    NavEntry("Purposes", "/consent/purposes", "consent.read", "Consent", 12),
    NavEntry("Vendors", "/consent/vendors", "consent.read", "Consent", 13),
    NavEntry("Geo rules", "/consent/geo-rules", "consent.read", "Consent", 14),
    NavEntry("Collection policy", "/consent/policy", "consent.read", "Consent", 15),
]

PROPERTY_FIELDS = (
    "key",
    "name",
    "kind",
    "cmp_id",
    "publisher_cc",
    "cookie_name",
    "cookie_max_age_days",
    "cookie_domain",
)
BLANK_PROPERTY = {
    "key": "",
    "name": "",
    "kind": "web",
    "cmp_id": "",
    "publisher_cc": "",
    "cookie_name": "accord_consent",
    "cookie_max_age_days": "180",
    "cookie_domain": "",
}


def property_values(form: Posted) -> dict[str, str]:
    """The property form as typed, to show again when it is refused."""
    return {name: field(form, name).strip() for name in PROPERTY_FIELDS}


def property_spec(values: dict[str, str]) -> PropertyIn:
    """The typed property as the API's model; blank optional fields are unset."""
    spec: dict[str, Any] = {
        "key": values["key"],
        "name": values["name"],
        "kind": values["kind"] or "web",
        "cmp_id": optional_int(values["cmp_id"]),
        "publisher_cc": values["publisher_cc"].upper() or None,
        "cookie_name": values["cookie_name"] or "accord_consent",
        "cookie_domain": values["cookie_domain"] or None,
    }
    if values["cookie_max_age_days"]:
        spec["cookie_max_age_days"] = values["cookie_max_age_days"]
    return PropertyIn.model_validate(spec)


def _landing(conn: Connection, business_id: str) -> dict[str, Any]:
    properties = config.list_properties(conn, business_id=business_id)
    rows = []
    for prop in properties:
        variants = config.current_variants(conn, property_id=prop["id"])
        current = variants[0] if variants else None
        rows.append(
            {
                **prop,
                "version": current["version"] if current else None,
                "variants": [v["variant"] for v in variants],
                "languages": sorted(current["texts"]) if current else [],
                "layout": current["layout"] if current else None,
                "published_at": current["published_at"] if current else None,
            }
        )
    return {
        "properties": rows,
        "purposes": len(config.list_purposes(conn, business_id=business_id)),
        "vendors": len(config.list_vendors(conn, business_id=business_id)),
        "geo_rules": len(config.geo_rules(conn, business_id=business_id)),
    }


def landing_chart(rows: list[dict[str, Any]]) -> Chart:
    return Chart(
        title="Notice versions and languages per property",
        x=[row["key"] for row in rows],
        series=[
            Series("Published versions", [row["version"] or 0 for row in rows]),
            Series("Languages", [len(row["languages"]) for row in rows]),
        ],
        kind="bar",
        x_title="Property",
        id="properties-chart",
    )


def _landing_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        data = _landing(conn, caller.business_id)
    return page(
        request,
        "landing.html",
        caller=caller,
        problems=problems,
        chart=landing_chart(data["properties"]),
        values=values or BLANK_PROPERTY,
        **data,
    )


@router.get("/consent")
@router.get("/consent/properties")
def landing(request: Request, state: State, caller: Read) -> Response:
    return _landing_page(request, state, caller)


@router.post("/consent/properties")
def create_property(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    values = property_values(form)
    try:
        spec = property_spec(values)
        with state.store.write() as conn:
            config.create_property(conn, business_id=caller.business_id, spec=spec)
            store_work.record(
                conn,
                caller,
                "consent_property.create",
                asset=("consent_property", spec.key),
                spec=spec.model_dump(mode="json"),
            )
    except ValidationError as exc:
        return _landing_page(request, state, caller, values=values, problems=from_validation(exc))
    except InvalidInput as exc:
        return _landing_page(request, state, caller, values=values, problems=from_invalid(exc))
    return redirect(
        request,
        f"/consent/properties/{spec.key}",
        notice=f"Property {spec.key} created with the standard purposes and notice version 1",
    )


def versions_chart(versions: list[dict[str, Any]]) -> Chart:
    ordered = list(reversed(versions))
    return Chart(
        title="Languages per published version",
        x=[f"v{v['version']}" for v in ordered],
        series=[
            Series(
                "Languages",
                [len({lang for n in v["variants"] for lang in n["texts"]}) for v in ordered],
            )
        ],
        kind="bar",
        x_title="Version",
        id="versions-chart",
    )


def _property_page(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    *,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        prop = config.get_property(conn, business_id=caller.business_id, key=key)
        versions = versions_of(conn, caller.business_id, key)
    shown = values or {
        name: "" if prop[name] is None else str(prop[name]) for name in PROPERTY_FIELDS
    }
    return page(
        request,
        "property.html",
        caller=caller,
        problems=problems,
        prop=prop,
        values=shown,
        versions=versions,
        chart=versions_chart(versions),
    )


@router.get("/consent/properties/{key}")
def property_page(key: str, request: Request, state: State, caller: Read) -> Response:
    return _property_page(request, state, caller, key)


@router.post("/consent/properties/{key}")
def update_property(
    key: str, request: Request, state: State, caller: Manage, form: Posted
) -> Response:
    values = {**property_values(form), "key": key}
    try:
        spec = property_spec(values)
        with state.store.write() as conn:
            config.update_property(conn, business_id=caller.business_id, spec=spec)
            store_work.record(
                conn,
                caller,
                "consent_property.update",
                asset=("consent_property", spec.key),
                spec=spec.model_dump(mode="json"),
            )
    except ValidationError as exc:
        return _property_page(
            request, state, caller, key, values=values, problems=from_validation(exc)
        )
    return redirect(request, f"/consent/properties/{key}", notice="Property settings saved")
