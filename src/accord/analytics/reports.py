"""Saved reports: a business's {kind, name, spec}, refreshed by the scheduler
(`analytics.reports` in process/jobs.py), each keeping its last result as JSON with its
time, which the dashboard (`/analytics/dashboard`) draws.

A kind is a runner from a spec to a JSON-able result, and a check of the spec when it
is saved; `KINDS` holds them by name. A report kind plugs in with one line there.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from ibis.backends import BaseBackend
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Connection, delete, select, update

from accord.analytics import service
from accord.analytics.attribution import AttributionSpec
from accord.analytics.attribution import check as check_attribution
from accord.analytics.models import saved_reports
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.store.db import Store

MAX_REPORTS = 50  # per business: each refresh runs them all


@dataclass(frozen=True)
class ReportInputs:
    """What a runner reads: the business's state and its lake on one engine."""

    store: Store
    backend: BaseBackend
    lake_url: str
    business_id: str
    today: date


Runner = Callable[[ReportInputs, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ReportKind:
    name: str
    title: str
    run: Runner
    # Raises InvalidInput naming the spec's field (without the `spec.` prefix).
    check: Callable[[Mapping[str, Any], date], None]


def engine_only(run: Callable[[BaseBackend, str, Mapping[str, Any]], dict[str, Any]]) -> Runner:
    """A runner from a report function that reads only the engine: `run(backend,
    business_id, spec)`."""
    return lambda inputs, spec: run(inputs.backend, inputs.business_id, spec)


def _problems(exc: ValidationError) -> InvalidInput:
    found = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ())) or "spec"
        found.append(FieldProblem(field, str(error.get("msg", "is not valid"))))
    return InvalidInput(found)


def dated(spec: Mapping[str, Any], today: date, *, to_excluded: bool) -> dict[str, Any]:
    """A saved spec with `from` and `to`, or with `last_days` counted back from today (so
    each refresh covers the latest days, today included): `to` is today, or tomorrow for
    the reports whose `to` is excluded (funnels, paths, retention)."""
    values = dict(spec)
    last_days = values.pop("last_days", None)
    if last_days is not None:
        if not isinstance(last_days, int) or isinstance(last_days, bool) or last_days <= 0:
            raise InvalidInput([FieldProblem("last_days", "must be a whole number above 0")])
        if "from" in values or "to" in values:
            raise InvalidInput([FieldProblem("last_days", "give last_days or from and to")])
        values["from"] = (today - timedelta(days=last_days - 1)).isoformat()
        values["to"] = (today + timedelta(days=1 if to_excluded else 0)).isoformat()
    return values


def attribution_spec(spec: Mapping[str, Any], today: date) -> AttributionSpec:
    """A saved attribution's spec: `from` and `to`, or `last_days` counted back from today."""
    values = dated(spec, today, to_excluded=False)
    try:
        parsed = AttributionSpec.model_validate(values)
    except ValidationError as exc:
        raise _problems(exc) from exc
    check_attribution(parsed)
    return parsed


def _check_attribution(spec: Mapping[str, Any], today: date) -> None:
    attribution_spec(spec, today)


def _run_attribution(inputs: ReportInputs, spec: Mapping[str, Any]) -> dict[str, Any]:
    with inputs.store.read() as conn:
        return service.attribution(
            conn,
            backend=inputs.backend,
            lake_url=inputs.lake_url,
            business_id=inputs.business_id,
            spec=attribution_spec(spec, inputs.today),
        )


def event_report(kind: str, title: str) -> ReportKind:
    """A funnel, path or retention report (`service.REPORTS`): its spec is the API's body,
    with `last_days` in place of `from` and `to` if wanted."""

    def run(inputs: ReportInputs, spec: Mapping[str, Any]) -> dict[str, Any]:
        return service.report_on(
            kind,
            dated(spec, inputs.today, to_excluded=True),
            store=inputs.store,
            backend=inputs.backend,
            lake_url=inputs.lake_url,
            business_id=inputs.business_id,
        )

    def check(spec: Mapping[str, Any], today: date) -> None:
        service.REPORTS[kind].parse(dated(spec, today, to_excluded=True))

    return ReportKind(kind, title, run=run, check=check)


KINDS: dict[str, ReportKind] = {
    "attribution": ReportKind(
        "attribution",
        "Attribution and acquisition cost",
        run=_run_attribution,
        check=_check_attribution,
    ),
    "funnels": event_report("funnels", "Funnel"),
    "paths": event_report("paths", "Paths"),
    "retention": event_report("retention", "Retention"),
}


class SavedReportIn(BaseModel):
    kind: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any]


def examples(last_days: int = 30) -> dict[str, SavedReportIn]:
    """A first report of each kind over the latest `last_days` days, by kind, in the event
    names of Segment's e-commerce spec (which the demo shop sends): the builder pages offer
    them as examples and `accord demo` saves them."""
    return {
        "funnels": SavedReportIn(
            kind="funnels",
            name="Purchase funnel",
            spec={
                "steps": [
                    {"event": "Product Viewed"},
                    {"event": "Product Added"},
                    {"event": "Order Completed"},
                ],
                "window_seconds": 7 * 86_400,
                "last_days": last_days,
            },
        ),
        "paths": SavedReportIn(
            kind="paths",
            name="After a product view",
            spec={
                "step": {"event": "Product Viewed"},
                "direction": "after",
                "depth": 3,
                "width": 5,
                "last_days": last_days,
            },
        ),
        "retention": SavedReportIn(
            kind="retention",
            name="Weekly retention",
            spec={"period": "week", "periods": max(1, last_days // 7), "last_days": last_days},
        ),
        "attribution": SavedReportIn(
            kind="attribution",
            name="Last-touch attribution",
            spec={
                "model": "last_touch",
                "conversion_event": "Order Completed",
                "lookback_days": last_days,
                "last_days": last_days,
            },
        ),
    }


@dataclass
class SavedReport:
    id: str
    kind: str
    name: str
    spec: dict[str, Any]
    result: dict[str, Any] | None
    refreshed_at: datetime | None
    error: str | None
    created_at: datetime


def check_input(data: SavedReportIn, *, today: date) -> None:
    kind = KINDS.get(data.kind)
    if kind is None:
        raise InvalidInput([FieldProblem("kind", f"one of: {', '.join(sorted(KINDS))}")])
    try:
        kind.check(data.spec, today)
    except InvalidInput as exc:
        raise InvalidInput(
            [FieldProblem(f"spec.{p.field}", p.reason) for p in exc.problems]
        ) from exc


def save(conn: Connection, *, business_id: str, data: SavedReportIn) -> str:
    check_input(data, today=utcnow().date())
    trait = data.spec.get("breakdown_trait") if data.kind == "funnels" else None
    if isinstance(trait, str):
        try:
            service.trait_type(conn, business_id=business_id, name=trait)
        except InvalidInput as exc:
            raise InvalidInput(
                [FieldProblem(f"spec.{p.field}", p.reason) for p in exc.problems]
            ) from exc
    if len(list_reports(conn, business_id=business_id)) >= MAX_REPORTS:
        raise InvalidInput([FieldProblem("name", f"a business keeps at most {MAX_REPORTS}")])
    report_id = new_id("rpt")
    conn.execute(
        saved_reports.insert().values(
            id=report_id,
            business_id=business_id,
            kind=data.kind,
            name=data.name.strip() or data.kind,
            spec=orjson.dumps(data.spec).decode(),
            created_at=utcnow(),
        )
    )
    return report_id


def _view(row: Any) -> SavedReport:
    return SavedReport(
        id=row.id,
        kind=row.kind,
        name=row.name,
        spec=orjson.loads(row.spec),
        result=orjson.loads(row.result) if row.result else None,
        refreshed_at=row.refreshed_at,
        error=row.error,
        created_at=row.created_at,
    )


def list_reports(conn: Connection, *, business_id: str) -> list[SavedReport]:
    rows = conn.execute(
        select(saved_reports)
        .where(saved_reports.c.business_id == business_id)
        .order_by(saved_reports.c.created_at, saved_reports.c.id)
    ).all()
    return [_view(row) for row in rows]


def get(conn: Connection, *, business_id: str, report_id: str) -> SavedReport:
    row = conn.execute(
        select(saved_reports).where(
            saved_reports.c.business_id == business_id, saved_reports.c.id == report_id
        )
    ).first()
    if row is None:
        raise NotFound(f"saved report {report_id}")
    return _view(row)


def remove(conn: Connection, *, business_id: str, report_id: str) -> None:
    done = conn.execute(
        delete(saved_reports).where(
            saved_reports.c.business_id == business_id, saved_reports.c.id == report_id
        )
    )
    if not done.rowcount:
        raise NotFound(f"saved report {report_id}")


def refresh(inputs: ReportInputs, *, report_id: str, now: datetime) -> SavedReport:
    """Run one saved report and keep its result (or, when it fails, why, beside the last
    result it had)."""
    with inputs.store.read() as conn:
        report = get(conn, business_id=inputs.business_id, report_id=report_id)
    kind = KINDS.get(report.kind)
    values: dict[str, Any]
    try:
        if kind is None:
            raise InvalidInput([FieldProblem("kind", f"no report kind {report.kind!r}")])
        result = kind.run(inputs, report.spec)
        values = {"result": orjson.dumps(result).decode(), "refreshed_at": now, "error": None}
    except Exception as exc:  # one report's failure must not stop the others
        reason = str(exc) if isinstance(exc, InvalidInput) else traceback.format_exc()
        values = {"error": reason[-4000:]}
    with inputs.store.write() as conn:
        conn.execute(
            update(saved_reports)
            .where(
                saved_reports.c.business_id == inputs.business_id,
                saved_reports.c.id == report_id,
            )
            .values(**values)
        )
        return get(conn, business_id=inputs.business_id, report_id=report_id)


def waiting(conn: Connection, *, business_id: str) -> bool:
    """Whether a saved report has never been refreshed (nor failed): the job then runs at
    once instead of at its hour."""
    row = conn.execute(
        select(saved_reports.c.id)
        .where(
            saved_reports.c.business_id == business_id,
            saved_reports.c.refreshed_at.is_(None),
            saved_reports.c.error.is_(None),
        )
        .limit(1)
    ).first()
    return row is not None


def refresh_all(inputs: ReportInputs, *, now: datetime) -> dict[str, float]:
    """Every saved report of the business: the scheduler's `analytics.reports` job."""
    with inputs.store.read() as conn:
        found = list_reports(conn, business_id=inputs.business_id)
    outcomes = [refresh(inputs, report_id=r.id, now=now) for r in found]
    failed = sum(1 for r in outcomes if r.error)
    return {"refreshed": float(len(outcomes) - failed), "failed": float(failed)}
