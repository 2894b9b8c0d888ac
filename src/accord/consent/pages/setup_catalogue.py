"""Consent set-up pages: purposes and vendors (list, edit, add) and the GVL import."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData, UploadFile

from accord.consent import config, gvl
from accord.consent.models import PurposeIn, VendorIn
from accord.consent.pages.setup_common import (
    LANGUAGE,
    Manage,
    Posted,
    Problems,
    Read,
    add,
    csv_list,
    field,
    fields,
    from_invalid,
    from_validation,
    page,
)
from accord.consent.signals import CONSENT_MODE_SIGNALS
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import redirect

router = APIRouter(include_in_schema=False)


def purpose_name(purpose: dict[str, Any]) -> str:
    texts = purpose["texts"]
    chosen = texts.get("en") or next(iter(texts.values()))
    return str(chosen["name"])


def catalogue_chart(purposes: list[dict[str, Any]], vendors: list[dict[str, Any]]) -> Chart:
    keys = [p["key"] for p in purposes]
    return Chart(
        title="Vendors and cookie patterns per purpose",
        x=keys,
        series=[
            Series("Vendors", [sum(1 for v in vendors if k in v["purposes"]) for k in keys]),
            Series("Cookie patterns", [len(p["cookies"]) for p in purposes]),
        ],
        kind="bar",
        x_title="Purpose",
        id="catalogue-chart",
    )


def _catalogue(conn: Connection, business_id: str) -> tuple[list[Any], list[Any]]:
    config.ensure_default_purposes(conn, business_id=business_id)
    return (
        config.list_purposes(conn, business_id=business_id),
        config.list_vendors(conn, business_id=business_id),
    )


# --- Purposes -------------------------------------------------------------------------


def purpose_values(purpose: dict[str, Any] | None) -> dict[str, Any]:
    """A purpose as its form shows it: one text row per language and a blank one to add."""
    if purpose is None:
        return {
            "key": "",
            "legal_basis": "consent",
            "tcf_purposes": "",
            "consent_mode": [],
            "cookies": "",
            "position": "100",
            "rows": [{"lang": "en", "name": "", "description": ""}],
        }
    rows = [
        {"lang": lang, "name": t["name"], "description": t.get("description", "")}
        for lang, t in purpose["texts"].items()
    ]
    return {
        "key": purpose["key"],
        "legal_basis": purpose["legal_basis"],
        "tcf_purposes": ", ".join(str(n) for n in purpose["tcf_purposes"]),
        "consent_mode": list(purpose["consent_mode"]),
        "cookies": "\n".join(purpose["cookies"]),
        "position": str(purpose["position"]),
        "rows": [*rows, {"lang": "", "name": "", "description": ""}],
    }


def posted_purpose(form: FormData, key: str) -> tuple[dict[str, Any], PurposeIn | None, Problems]:
    """The purpose form as typed, the purpose it describes, and what is wrong with it."""
    rows = [
        {"lang": lang.strip(), "name": name.strip(), "description": description.strip()}
        for lang, name, description in zip(
            fields(form, "lang"), fields(form, "name"), fields(form, "description"), strict=False
        )
    ]
    tcf_text = field(form, "tcf_purposes").strip()
    position = field(form, "position").strip()
    cookies = field(form, "cookies").strip()
    values: dict[str, Any] = {
        "key": key,
        "legal_basis": field(form, "legal_basis"),
        "tcf_purposes": tcf_text,
        "consent_mode": fields(form, "consent_mode"),
        "cookies": cookies,
        "position": position,
        "rows": rows,
    }
    problems: Problems = {}
    texts: dict[str, dict[str, str]] = {}
    row_of: dict[str, int] = {}
    for i, row in enumerate(rows):
        if not (row["lang"] or row["name"] or row["description"]):
            continue
        if not LANGUAGE.fullmatch(row["lang"]):
            add(problems, f"lang-{i}", "a language code such as en, de or pt-BR")
        elif row["lang"] in texts:
            add(problems, f"lang-{i}", "this language has a row already")
        else:
            row_of[row["lang"]] = i
            texts[row["lang"]] = {"name": row["name"], "description": row["description"]}
    if not texts and not problems:
        add(problems, "name-0", "a purpose needs a name in at least one language")
    tcf = csv_list(tcf_text.replace(" ", ","))
    for number in tcf:
        if not number.isdigit():
            add(problems, "tcf_purposes", f"{number!r} is not a number")
    if not position.lstrip("-").isdigit():
        add(problems, "position", "must be a whole number")
    if problems:
        return values, None, problems
    rename = {"key": "key", "legal_basis": "legal_basis", "cookies": "cookies"}
    for lang, i in row_of.items():
        rename[f"texts.{lang}.name"] = f"name-{i}"
        rename[f"texts.{lang}.description"] = f"description-{i}"
    try:
        spec = PurposeIn.model_validate(
            {
                "key": key,
                "texts": texts,
                "legal_basis": values["legal_basis"],
                "tcf_purposes": [int(n) for n in tcf],
                "consent_mode": values["consent_mode"],
                "cookies": [line.strip() for line in cookies.splitlines() if line.strip()],
                "position": int(position),
            }
        )
    except ValidationError as exc:
        return values, None, from_validation(exc, rename)
    return values, spec, {}


def _purposes_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        purposes, vendors = _catalogue(conn, caller.business_id)
    return page(
        request,
        "purposes.html",
        caller=caller,
        problems=problems,
        purposes=purposes,
        names={p["key"]: purpose_name(p) for p in purposes},
        chart=catalogue_chart(purposes, vendors),
        values=values or purpose_values(None),
        signals=CONSENT_MODE_SIGNALS,
    )


@router.get("/consent/purposes")
def purposes_page(request: Request, state: State, caller: Read) -> Response:
    return _purposes_page(request, state, caller)


def _save_purpose(state: State, caller: Caller, spec: PurposeIn, *, adding: bool) -> None:
    with state.store.write() as conn:
        if adding and spec.key in config.purpose_keys(conn, business_id=caller.business_id):
            raise InvalidInput(
                [FieldProblem("key", f"purpose {spec.key!r} exists already: edit it")]
            )
        config.save_purpose(conn, business_id=caller.business_id, spec=spec)
        store_work.record(
            conn,
            caller,
            "consent_purpose.save",
            asset=("consent_purpose", spec.key),
            spec=spec.model_dump(mode="json"),
        )


@router.post("/consent/purposes")
def add_purpose(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    values, spec, problems = posted_purpose(form, field(form, "key").strip())
    if spec is not None:
        try:
            _save_purpose(state, caller, spec, adding=True)
        except InvalidInput as exc:
            problems = from_invalid(exc)
    if spec is None or problems:
        return _purposes_page(request, state, caller, values=values, problems=problems)
    return redirect(request, "/consent/purposes", notice=f"Purpose {spec.key} added")


def _purpose_page(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    *,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        purposes, _ = _catalogue(conn, caller.business_id)
    purpose = next((p for p in purposes if p["key"] == key), None)
    if purpose is None:
        raise NotFound(f"purpose {key!r}")
    return page(
        request,
        "purpose.html",
        caller=caller,
        problems=problems,
        purpose=purpose,
        values=values or purpose_values(purpose),
        signals=CONSENT_MODE_SIGNALS,
    )


@router.get("/consent/purposes/{key}")
def purpose_page(key: str, request: Request, state: State, caller: Read) -> Response:
    return _purpose_page(request, state, caller, key)


@router.post("/consent/purposes/{key}")
def edit_purpose(
    key: str, request: Request, state: State, caller: Manage, form: Posted
) -> Response:
    with state.store.read() as conn:
        if key not in config.purpose_keys(conn, business_id=caller.business_id):
            raise NotFound(f"purpose {key!r}")
    values, spec, problems = posted_purpose(form, key)
    if spec is not None:
        try:
            _save_purpose(state, caller, spec, adding=False)
        except InvalidInput as exc:
            problems = from_invalid(exc)
    if spec is None or problems:
        return _purpose_page(request, state, caller, key, values=values, problems=problems)
    return redirect(
        request,
        "/consent/purposes",
        notice=f"Purpose {key} saved; banners show it from their next published version",
    )


# --- Vendors --------------------------------------------------------------------------


def vendor_values(vendor: dict[str, Any] | None) -> dict[str, Any]:
    if vendor is None:
        return {"key": "", "name": "", "purposes": [], "tcf_id": "", "policy_url": ""}
    return {
        "key": vendor["id"],
        "name": vendor["name"],
        "purposes": list(vendor["purposes"]),
        "tcf_id": "" if vendor["tcf_id"] is None else str(vendor["tcf_id"]),
        "policy_url": vendor["policy_url"] or "",
    }


def posted_vendor(form: FormData, key: str) -> tuple[dict[str, Any], VendorIn | None, Problems]:
    values = {
        "key": key,
        "name": field(form, "name").strip(),
        "purposes": fields(form, "purposes"),
        "tcf_id": field(form, "tcf_id").strip(),
        "policy_url": field(form, "policy_url").strip(),
    }
    try:
        spec = VendorIn.model_validate(
            {
                "key": key,
                "name": values["name"],
                "purposes": values["purposes"],
                "tcf_id": values["tcf_id"] or None,
                "policy_url": values["policy_url"] or None,
            }
        )
    except ValidationError as exc:
        return values, None, from_validation(exc)
    return values, spec, {}


def _vendors_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
    tcf_ids: str = "",
) -> Response:
    with state.store.read() as conn:
        purposes, vendors = _catalogue(conn, caller.business_id)
        properties = config.list_properties(conn, business_id=caller.business_id)
    gvl_versions = sorted({p["gvl_version"] for p in properties if p["gvl_version"]})
    return page(
        request,
        "vendors.html",
        caller=caller,
        problems=problems,
        vendors=vendors,
        purposes=purposes,
        names={p["key"]: purpose_name(p) for p in purposes},
        chart=catalogue_chart(purposes, vendors),
        values=values or vendor_values(None),
        tcf_ids=tcf_ids,
        gvl_versions=gvl_versions,
    )


@router.get("/consent/vendors")
def vendors_page(request: Request, state: State, caller: Read) -> Response:
    return _vendors_page(request, state, caller)


def _save_vendor(state: State, caller: Caller, spec: VendorIn, *, adding: bool) -> None:
    with state.store.write() as conn:
        known = {v["id"] for v in config.list_vendors(conn, business_id=caller.business_id)}
        if adding and spec.key in known:
            raise InvalidInput(
                [FieldProblem("key", f"vendor {spec.key!r} exists already: edit it")]
            )
        config.save_vendor(conn, business_id=caller.business_id, spec=spec)
        store_work.record(
            conn,
            caller,
            "consent_vendor.save",
            asset=("consent_vendor", spec.key),
            spec=spec.model_dump(mode="json"),
        )


@router.post("/consent/vendors")
def add_vendor(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    values, spec, problems = posted_vendor(form, field(form, "key").strip())
    if spec is not None:
        try:
            _save_vendor(state, caller, spec, adding=True)
        except InvalidInput as exc:
            problems = from_invalid(exc)
    if spec is None or problems:
        return _vendors_page(request, state, caller, values=values, problems=problems)
    return redirect(request, "/consent/vendors", notice=f"Vendor {spec.name} added")


def _vendor_page(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    *,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        purposes, vendors = _catalogue(conn, caller.business_id)
    vendor = next((v for v in vendors if v["id"] == key), None)
    if vendor is None:
        raise NotFound(f"vendor {key!r}")
    return page(
        request,
        "vendor.html",
        caller=caller,
        problems=problems,
        vendor=vendor,
        purposes=purposes,
        names={p["key"]: purpose_name(p) for p in purposes},
        values=values or vendor_values(vendor),
    )


@router.get("/consent/vendors/{key}")
def vendor_page(key: str, request: Request, state: State, caller: Read) -> Response:
    return _vendor_page(request, state, caller, key)


@router.post("/consent/vendors/{key}")
def edit_vendor(key: str, request: Request, state: State, caller: Manage, form: Posted) -> Response:
    with state.store.read() as conn:
        if key not in {v["id"] for v in config.list_vendors(conn, business_id=caller.business_id)}:
            raise NotFound(f"vendor {key!r}")
    values, spec, problems = posted_vendor(form, key)
    if spec is not None:
        try:
            _save_vendor(state, caller, spec, adding=False)
        except InvalidInput as exc:
            problems = from_invalid(exc)
    if spec is None or problems:
        return _vendor_page(request, state, caller, key, values=values, problems=problems)
    return redirect(request, "/consent/vendors", notice=f"Vendor {spec.name} saved")


@router.post("/consent/gvl")
def import_gvl(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    """The API's import (`POST /api/consent/vendors/gvl`) from an uploaded vendor-list.json."""
    tcf_ids = field(form, "tcf_ids").strip()
    upload = form.get("file")
    problems: Problems = {}
    wanted: set[int] | None = None
    if tcf_ids:
        parts = csv_list(tcf_ids.replace(" ", ","))
        if all(part.isdigit() for part in parts):
            wanted = {int(part) for part in parts}
        else:
            add(problems, "tcf_ids", "comma-separated vendor ids (whole numbers)")
    body = upload.file.read() if isinstance(upload, UploadFile) else b""
    if not body:
        add(problems, "file", "choose the vendor-list.json file to import")
    if problems:
        return _vendors_page(request, state, caller, problems=problems, tcf_ids=tcf_ids)
    try:
        vendor_list = gvl.parse(body)
        with state.store.write() as conn:
            count = config.import_gvl(
                conn, business_id=caller.business_id, gvl=vendor_list, tcf_ids=wanted
            )
            store_work.record(
                conn,
                caller,
                "consent_vendor.import_gvl",
                gvl_version=vendor_list.vendor_list_version,
                tcf_ids=sorted(wanted) if wanted else None,
            )
    except InvalidInput as exc:
        found: Problems = {"file": [f"{p.field}: {p.reason}" for p in exc.problems]}
        return _vendors_page(request, state, caller, problems=found, tcf_ids=tcf_ids)
    return redirect(
        request,
        "/consent/vendors",
        notice=f"{count} vendors imported from Global Vendor List version "
        f"{vendor_list.vendor_list_version}",
    )
