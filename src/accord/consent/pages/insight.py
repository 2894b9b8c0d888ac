"""Consent pages: what the banner produced. Opt-in rates, banner A/B tests, the ledger's
check; the cookie scanner (`scans`) and the proof look-up (`proofs`) are included here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from accord.consent import abtest, analytics, config, export, ledger
from accord.consent.pages import proofs, scans
from accord.core.clock import utcnow
from accord.engine.connection import connect
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Kind, Series
from accord.web.state import State
from accord.web.ui import NavEntry, render

router = APIRouter(include_in_schema=False)
router.include_router(scans.router)
router.include_router(proofs.router)
nav = [
    NavEntry("Opt-in rates", "/consent/opt-in", "consent.read", "Consent", 20),
    NavEntry("Banner A/B tests", "/consent/abtests", "consent.read", "Consent", 21),
    *scans.nav,
    *proofs.nav,
    NavEntry("Ledger check", "/consent/ledger", "consent.read", "Consent", 25),
]

Reader = Annotated[Caller, Depends(requires("consent.read"))]

# The dimensions the opt-in page charts, with their titles and chart kinds.
BREAKDOWNS: tuple[tuple[str, str, Kind], ...] = (
    ("country", "Opt-in rate by country", "hbar"),
    ("device", "Opt-in rate by device", "bar"),
    ("notice_version", "Opt-in rate by notice version", "bar"),
)
MAX_LABELS = 30


def _engine() -> Any:
    # The decisions are an in-memory Arrow table: DuckDB in the process reads it directly.
    return connect("duckdb://")


def parse_day(text: str | None, field: str, problems: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        problems[field] = f"{text!r} is not a date (write YYYY-MM-DD)"
        return None


def property_of(
    properties: Sequence[dict[str, Any]], key: str | None, problems: dict[str, str]
) -> dict[str, Any] | None:
    """The property named `key` among the business's, or a problem naming the field."""
    if not key:
        return None
    found = next((p for p in properties if p["key"] == key), None)
    if found is None:
        problems["property"] = f"unknown property {key!r}"
    return found


def rate_chart(
    rows: list[dict[str, Any]], *, by: str, title: str, kind: Kind, chart_id: str
) -> Chart:
    """Opt-in rate per value of `by` (the x labels), one series per purpose."""
    purposes = sorted({row["purpose"] for row in rows})
    totals: dict[str, int] = {}
    for row in rows:
        label = "unknown" if row[by] is None else str(row[by])
        totals[label] = totals.get(label, 0) + row["decisions"]
    # The most decided values first (days in order), at most MAX_LABELS of them.
    if by == "day":
        labels = sorted(totals)
    else:
        labels = sorted(totals, key=lambda label: (-totals[label], label))[:MAX_LABELS]
    rates = {
        (row["purpose"], "unknown" if row[by] is None else str(row[by])): row["opt_in_rate"]
        for row in rows
    }
    return Chart(
        title=title,
        x=labels,
        series=[Series(p, [rates.get((p, label)) for label in labels]) for p in purposes],
        kind=kind,
        fmt="percent",
        x_title=by.replace("_", " "),
        y_title="opt-in rate",
        id=chart_id,
        height=max(280, 24 * len(labels)) if kind == "hbar" else 280,
    )


@router.get("/consent/opt-in")
def opt_in_page(
    request: Request,
    state: State,
    caller: Reader,
    start: str | None = None,
    end: str | None = None,
    property: str | None = None,
) -> Response:
    """Opt-in rates by purpose, country, device, notice version and day, over a date range."""
    problems: dict[str, str] = {}
    first = parse_day(start, "start", problems)
    last = parse_day(end, "end", problems)
    if first and last and first > last:
        problems["end"] = "is before the start"
    with state.store.read() as conn:
        properties = config.list_properties(conn, business_id=caller.business_id)
        chosen = property_of(properties, property, problems)
        table = None if problems else analytics.decisions(conn, business_id=caller.business_id)
    form = {"start": start or "", "end": end or "", "property": property or ""}
    if problems or table is None:
        return render(
            request,
            "consent/insight/opt_in.html",
            caller=caller,
            status=400,
            form=form,
            problems=problems,
            properties=properties,
            kpis=None,
            charts=[],
        )
    backend = _engine()
    scope: dict[str, Any] = {
        "start": first,
        "end": last,
        "property_id": chosen["id"] if chosen else None,
    }
    kpis = analytics.summary(backend, table, **scope)
    charts = [
        rate_chart(
            analytics.opt_in_rates(backend, table, by="purpose", **scope),
            by="purpose",
            title="Opt-in rate by purpose",
            kind="bar",
            chart_id="by-purpose",
        ),
        rate_chart(
            analytics.opt_in_rates(backend, table, by="day", **scope),
            by="day",
            title="Opt-in rate by day",
            kind="line",
            chart_id="by-day",
        ),
    ]
    charts += [
        rate_chart(
            analytics.opt_in_rates(backend, table, by=by, **scope),
            by=by,
            title=title,
            kind=kind,
            chart_id=f"by-{by.replace('_', '-')}",
        )
        for by, title, kind in BREAKDOWNS
    ]
    return render(
        request,
        "consent/insight/opt_in.html",
        caller=caller,
        form=form,
        problems={},
        properties=properties,
        kpis=kpis,
        charts=charts,
    )


def _verdict_chart(report: dict[str, Any]) -> Chart:
    variants = report["variants"]
    return Chart(
        title=f"First-decision opt-in rate for {report['purpose']} by variant",
        x=[v["variant"] for v in variants],
        series=[Series("opt-in rate", [v["rate"] for v in variants])],
        kind="bar",
        fmt="percent",
        x_title="variant",
        y_title="opt-in rate",
        id="abtest-rates",
    )


@router.get("/consent/abtests")
def abtests_page(
    request: Request,
    state: State,
    caller: Reader,
    property: str | None = None,
    purpose: str = "marketing",
    version: str | None = None,
) -> Response:
    """A property's banner A/B test: each variant against the control, and the verdict."""
    problems: dict[str, str] = {}
    with state.store.read() as conn:
        properties = config.list_properties(conn, business_id=caller.business_id)
        purposes = sorted(config.purpose_keys(conn, business_id=caller.business_id) - {"necessary"})
        tests = {
            p["key"]: _tested_versions(
                config.notice_versions(conn, business_id=caller.business_id, property_key=p["key"])
            )
            for p in properties
        }
        chosen = property_of(properties, property, problems)
        if chosen is None and not property and properties:
            # Without a choice, the first property that runs a test, else the first.
            chosen = next((p for p in properties if tests[p["key"]][1]), properties[0])
        if purposes and purpose not in purposes:
            problems["purpose"] = f"unknown purpose {purpose!r}"
        versions, with_test = tests[chosen["key"]] if chosen is not None else ([], [])
        tested: int | None = next(iter(with_test or versions), None)
        if version:
            if not version.isdigit() or int(version) not in versions:
                problems["version"] = f"{version!r} is not a published version of this property"
            else:
                tested = int(version)
        table = (
            analytics.decisions(conn, business_id=caller.business_id)
            if chosen is not None and tested is not None and not problems
            else None
        )
    report = None
    if table is not None and chosen is not None and tested is not None:
        report = abtest.evaluate(
            _engine(), table, property_id=chosen["id"], version=tested, purpose=purpose
        )
    return render(
        request,
        "consent/insight/abtests.html",
        caller=caller,
        status=400 if problems else 200,
        problems=problems,
        properties=properties,
        purposes=purposes,
        versions=versions,
        form={
            "property": property or (chosen["key"] if chosen else ""),
            "purpose": purpose,
            "version": version or (str(tested) if tested else ""),
        },
        chosen=chosen,
        report=report,
        chart=_verdict_chart(report) if report and report["variants"] else None,
    )


def _tested_versions(notices: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """A property's versions, newest first, and those published with several variants."""
    variants: dict[int, int] = {}
    for notice in notices:
        variants[notice["version"]] = variants.get(notice["version"], 0) + 1
    versions = sorted(variants, reverse=True)
    return versions, [v for v in versions if variants[v] > 1]


def _per_day_chart(rows: list[dict[str, Any]]) -> Chart:
    days = sorted({row["day"] for row in rows})
    sources = sorted({row["source"] for row in rows})
    counts = {(row["day"], row["source"]): row["decisions"] for row in rows}
    return Chart(
        title="Decisions recorded per day, by source",
        x=days,
        series=[Series(s, [counts.get((d, s), 0) for d in days]) for s in sources],
        kind="stacked",
        x_title="day",
        y_title="decisions",
        id="ledger-per-day",
    )


def _ledger_page(
    request: Request, state: State, caller: Caller, *, purpose: str = "", error: str | None = None
) -> Response:
    with state.store.read() as conn:
        checked_at = utcnow()
        verification = ledger.verify(conn, business_id=caller.business_id)
        table = analytics.decisions(conn, business_id=caller.business_id)
        purposes = [p["key"] for p in config.list_purposes(conn, business_id=caller.business_id)]
    return render(
        request,
        "consent/insight/ledger.html",
        caller=caller,
        status=400 if error else 200,
        verification=verification.to_json(),
        checked_at=checked_at,
        chart=_per_day_chart(analytics.decisions_per_day(_engine(), table)),
        purposes=purposes,
        purpose=purpose,
        errors={"purpose": error} if error else {},
    )


@router.get("/consent/ledger")
def ledger_page(request: Request, state: State, caller: Reader) -> Response:
    """The ledger's hash chain checked now, with what was checked and when."""
    return _ledger_page(request, state, caller)


@router.get("/consent/export.csv")
def export_page(request: Request, state: State, caller: Reader, purpose: str = "") -> Response:
    """The identifiers whose newest choice grants `purpose`, as `GET /api/consent/export`."""
    with state.store.read() as conn:
        known = {p["key"] for p in config.list_purposes(conn, business_id=caller.business_id)}
        rows = (
            export.subjects_granting(conn, business_id=caller.business_id, purpose=purpose)
            if purpose in known
            else None
        )
    if rows is None:
        error = "choose a purpose" if not purpose else f"{purpose!r} is not a purpose of yours"
        return _ledger_page(request, state, caller, purpose=purpose[:100], error=error)
    with state.store.write() as conn:
        store_work.record(conn, caller, "consent.export", purpose=purpose, rows=len(rows))
    return StreamingResponse(
        export.to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="consent-{purpose}.csv"'},
    )
