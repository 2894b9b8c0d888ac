"""Consent pages: the cookie scanner. Scans asked for here run as `consent.scan` jobs; each
finding can be added to what the banner declares in one click."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from accord.consent import config
from accord.consent import scans as service
from accord.consent.scanner import MAX_PAGES
from accord.core.errors import InvalidInput
from accord.web import jobs, store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Cookie scanner", "/consent/scans", "consent.read", "Consent", 22)]

Reader = Annotated[Caller, Depends(requires("consent.read"))]
Manager = Annotated[Caller, Depends(requires("consent.manage"))]

JOB = "consent.scan"
CHARTED_SCANS = 20


def _list_context(state: AppState, business_id: str, property_key: str | None) -> dict[str, Any]:
    with state.store.read() as conn:
        properties = config.list_properties(conn, business_id=business_id)
        chosen = next((p for p in properties if p["key"] == property_key), None)
        rows = service.list_scans(
            conn, business_id=business_id, property_id=chosen["id"] if chosen else None
        )
    names = {p["id"]: p for p in properties}
    ended = [r for r in reversed(rows) if r["status"] == "succeeded"][-CHARTED_SCANS:]
    chart = Chart(
        title="Findings of each scan",
        x=[f"{r['requested_at']:%Y-%m-%d %H:%M} {r['id'][-6:]}" for r in ended],
        series=[
            Series("flagged before consent", [r["flagged"] for r in ended]),
            Series("not flagged", [r["findings"] - r["flagged"] for r in ended]),
        ],
        kind="stacked",
        x_title="scan",
        y_title="findings",
        id="scan-findings",
    )
    return {
        "properties": properties,
        "names": names,
        "scans": rows,
        "chart": chart,
        "filter": property_key or "",
        "max_pages": MAX_PAGES,
    }


@router.get("/consent/scans")
def scans_page(
    request: Request, state: State, caller: Reader, property: str | None = None
) -> Response:
    """Every scan, newest first, and the form that asks for one."""
    context = _list_context(state, caller.business_id, property)
    problems = {}
    if property and not any(p["key"] == property for p in context["properties"]):
        problems["property"] = f"unknown property {property!r}"
    return render(
        request,
        "consent/insight/scans.html",
        caller=caller,
        status=400 if problems else 200,
        problems=problems,
        form={"property": property or "", "url": "", "pages": "10", "fetch_third_party": True},
        can_manage=caller.can("consent.manage"),
        **context,
    )


@router.post("/consent/scans")
async def scan_now(
    request: Request,
    state: State,
    caller: Manager,
    property: Annotated[str, Form(max_length=64)] = "",
    url: Annotated[str, Form(max_length=4000)] = "",
    pages: Annotated[str, Form(max_length=10)] = "10",
    fetch_third_party: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Queue a scan and make the property's `consent.scan` job due now; never scan here."""
    problems: dict[str, str] = {}
    count = int(pages) if pages.strip().isdigit() else 0
    if not count:
        problems["pages"] = f"must be a whole number from 1 to {MAX_PAGES}"
    scan: dict[str, Any] | None = None
    if not problems:
        try:
            scan = await store_work.write(
                state,
                lambda conn: service.request_scan(
                    conn,
                    business_id=caller.business_id,
                    property_key=property,
                    url=url,
                    pages=count,
                    fetch_third_party=fetch_third_party == "on",
                    requested_by=caller.label,
                    outbound=state.settings.outbound_policy(),
                ),
            )
        except InvalidInput as exc:
            problems.update({p.field: p.reason for p in exc.problems})
    if scan is None:
        context = await store_work.run(_list_context, state, caller.business_id, None)
        return await arender(
            request,
            "consent/insight/scans.html",
            caller=caller,
            status=400,
            problems=problems,
            form={
                "property": property,
                "url": url,
                "pages": pages,
                "fetch_third_party": fetch_third_party == "on",
            },
            can_manage=True,
            **context,
        )
    await jobs.run_soon(state, business_id=caller.business_id, name=JOB, target=scan["property_id"])
    return redirect(
        request,
        f"/consent/scans/{scan['id']}",
        notice=f"Scan of {scan['url']} queued: the worker starts it within seconds",
    )


def _detail_context(state: AppState, business_id: str, scan_id: str) -> dict[str, Any]:
    with state.store.read() as conn:
        scan = service.get_scan(conn, business_id=business_id, scan_id=scan_id)
        found = service.findings(conn, business_id=business_id, scan_id=scan_id)
        purposes = [p["key"] for p in config.list_purposes(conn, business_id=business_id)]
        properties = {p["id"]: p for p in config.list_properties(conn, business_id=business_id)}
    labels = sorted({f["purpose"] or "unknown" for f in found})
    tally: dict[tuple[str, bool], int] = {}
    for f in found:
        key = (f["purpose"] or "unknown", bool(f["declared"]))
        tally[key] = tally.get(key, 0) + 1
    chart = Chart(
        title="Findings by purpose: declared on the banner or not",
        x=labels,
        series=[
            Series(name, [tally.get((label, want), 0) for label in labels])
            for name, want in (("declared", True), ("not declared", False))
        ],
        kind="stacked",
        x_title="purpose (catalogue)",
        y_title="findings",
        id="findings-by-purpose",
    )
    return {
        "scan": scan,
        "findings": found,
        "purposes": purposes,
        "property": properties.get(scan["property_id"]),
        "chart": chart,
    }


@router.get("/consent/scans/{scan_id}")
def scan_page(request: Request, state: State, caller: Reader, scan_id: str) -> Response:
    """One scan: where it went, what it found, and whether the banner declares each finding."""
    return render(
        request,
        "consent/insight/scan.html",
        caller=caller,
        problems={},
        can_manage=caller.can("consent.manage"),
        **_detail_context(state, caller.business_id, scan_id),
    )


@router.post("/consent/scans/{scan_id}/findings/{finding_id}/declare")
def declare_finding(
    request: Request,
    state: State,
    caller: Manager,
    scan_id: str,
    finding_id: int,
    purpose: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Add the finding's cookie to the purpose's list and its vendor to the vendors."""
    try:
        with state.store.write() as conn:
            changed = service.declare(
                conn,
                business_id=caller.business_id,
                scan_id=scan_id,
                finding_id=finding_id,
                purpose=purpose,
            )
    except InvalidInput as exc:
        return render(
            request,
            "consent/insight/scan.html",
            caller=caller,
            status=400,
            problems={finding_id: {p.field: p.reason for p in exc.problems}},
            typed={finding_id: purpose},
            can_manage=True,
            **_detail_context(state, caller.business_id, scan_id),
        )
    what = [f"cookie {changed['cookie']} under {purpose}"] if changed["cookie"] else []
    what += [f"vendor {changed['vendor']}"] if changed["vendor"] else []
    notice = f"Declared {' and '.join(what)}" if what else "Already declared: nothing changed"
    return redirect(request, f"/consent/scans/{scan_id}", notice=notice)
