"""The Imports page: upload a CSV, map its columns (a preset, a saved mapping or the form),
preview the first rows as events, import, and read the report; prior consent records."""

from __future__ import annotations

from collections.abc import Mapping as Fields
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.datastructures import FormData, UploadFile

from accord.accounts.service import internal_source
from accord.collect import mapped
from accord.collect.mapping import (
    NAMED_TIME_FORMATS,
    PRESET_LABELS,
    Mapped,
    Mapping,
    check_columns,
    fit_preset,
)
from accord.collect.mapping_form import fields_of, form_field, mapping_from_fields
from accord.consent.imports import (
    SUBJECT_KINDS,
    PriorRecords,
    import_prior_records,
    ledger_recorder,
)
from accord.core.errors import FieldProblem, InvalidInput, PayloadTooLarge
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited, refuse_declared_over
from accord.web.charts import Chart, Series
from accord.web.downloads import attachment
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Imports", "/imports", "leads.read", "Data", 25)]

# The same permissions as lead imports: reading the page, and importing into the business.
Reader = Annotated[Caller, Depends(requires("leads.read"))]
Manager = Annotated[Caller, Depends(requires("leads.manage"))]
ConsentManager = Annotated[Caller, Depends(requires("consent.manage"))]


async def within_import_limit(request: Request, state: State) -> None:
    """Refuse an upload over `ACCORD_MAX_IMPORT_BYTES` before its body is read: by its
    Content-Length, or, sent without one, by counting while it arrives."""
    limit = state.settings.max_import_bytes
    reason = (
        f"the upload is over {limit} bytes (ACCORD_MAX_IMPORT_BYTES); "
        "import bigger files with `accord import`"
    )
    if not refuse_declared_over(request, limit=limit, field="file", reason=reason):
        await read_limited(request, limit=limit, field="file", reason=reason)


Limited = Depends(within_import_limit)


# --- Pages -------------------------------------------------------------------------------


def _overview(state: AppState, caller: Caller) -> dict[str, Any]:
    with state.store.read() as conn:
        reports = mapped.list_reports(conn, business_id=caller.business_id)
        saved = mapped.saved_mappings(conn, business_id=caller.business_id)
    recent = list(reversed(reports))
    chart = Chart(
        title="Rows of recent imports",
        x=[f"{r['filename']} · {r['created_at']:%m-%d %H:%M}" for r in recent],
        series=[
            Series("accepted", [r["accepted"] for r in recent]),
            Series("dropped by consent", [r["dropped_by_consent"] for r in recent]),
            Series("rejected rows", [r["rejected_rows"] for r in recent]),
        ],
        kind="stacked",
        x_title="import",
        y_title="events and rows",
    )
    return {"reports": reports, "saved": saved, "chart": chart}


def _index(
    state: AppState,
    caller: Caller,
    *,
    status: int = 200,
    problems: dict[str, list[str]] | None = None,
    posted: Fields[str, str] | None = None,
    prior: PriorRecords | None = None,
    prior_chart: Chart | None = None,
) -> dict[str, Any]:
    return {
        "caller": caller,
        "status": status,
        "presets": PRESET_LABELS,
        "problems": problems or {},
        "posted": dict(posted or {}),
        "subject_kinds": SUBJECT_KINDS,
        "max_bytes": state.settings.max_import_bytes,
        "can_manage": "leads.manage" in caller.permissions,
        "prior": prior,
        "prior_chart": prior_chart,
        **_overview(state, caller),
    }


@router.get("/imports")
async def imports_page(request: Request, state: State, caller: Reader) -> Response:
    context = await store_work.run(_index, state, caller)
    return await arender(request, "imports/index.html", **context)


def _by_field(problems: list[FieldProblem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in problems:
        out.setdefault(problem.field, []).append(problem.reason)
    return out


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _fields(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


async def _upload_of(form: FormData, state: AppState) -> tuple[str, bytes] | None:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    limit = state.settings.max_import_bytes
    raw = await upload.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge("file", f"the file is over {limit} bytes (ACCORD_MAX_IMPORT_BYTES)")
    return upload.filename, raw


def _chosen(
    conn: Connection, *, business_id: str, choice: str, header: list[str], fields: dict[str, str]
) -> Mapping:
    """The mapping picked on the page: `preset:NAME`, `saved:NAME` or the form's fields."""
    kind, _, name = choice.partition(":")
    if kind == "preset":
        return fit_preset(name, header)
    if kind == "saved":
        return mapped.saved_mapping(conn, business_id=business_id, name=name)
    return mapping_from_fields(fields)


def _preview_context(
    state: AppState,
    caller: Caller,
    *,
    upload_id: str,
    choice: str,
    fields: dict[str, str],
    notice: str | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Everything the preview page shows; `InvalidInput` problems are shown by field.
    `fresh`: a file just uploaded to be mapped in the form, nothing to check yet."""
    with state.store.read() as conn:
        filename, raw = mapped.staged_upload(
            conn, business_id=caller.business_id, upload_id=upload_id
        )
        problems: list[FieldProblem] = []
        rows: list[Mapped] = []
        csv_file = mapped.read_csv_bytes(raw)
        label = choice.partition(":")[2] or "form"
        try:
            if fresh:
                raise _Fresh
            chosen = _chosen(
                conn,
                business_id=caller.business_id,
                choice=choice,
                header=csv_file.header,
                fields=fields,
            )
            fields = fields_of(chosen)
            check_columns(chosen, csv_file.header)
            rows = mapped.preview(csv_file.rows, chosen, state.limits)
        except InvalidInput as exc:
            problems = [FieldProblem(form_field(p.field), p.reason) for p in exc.problems]
        except _Fresh:
            fields = {"call": "track"}
        saved = mapped.saved_mappings(conn, business_id=caller.business_id)
    return {
        "caller": caller,
        "status": 400 if problems else 200,
        "upload_id": upload_id,
        "filename": filename,
        "header": csv_file.header,
        "fields": fields,
        "problems": _by_field(problems),
        "rows": rows,
        "saved": saved,
        "time_formats": NAMED_TIME_FORMATS,
        "mapping_label": fields.get("mapping_label") or label,
        "notice": notice,
        "chart": _preview_chart(rows),
    }


class _Fresh(Exception):
    """A file just uploaded to be mapped in the form: nothing to check yet."""


def _preview_chart(rows: list[Mapped]) -> Chart:
    good = sum(1 for m in rows if m.event is not None)
    return Chart(
        title=f"The first {len(rows)} events",
        x=["would be imported", "would be rejected"],
        series=[Series("events", [good, len(rows) - good])],
        kind="bar",
        height=200,
    )


@router.post("/imports/preview", dependencies=[Limited])
async def preview_page(request: Request, state: State, caller: Manager) -> Response:
    form = await request.form()
    fields = _fields(form)
    choice = _text(form, "choice") or "custom"
    upload = await _upload_of(form, state)
    upload_id = _text(form, "upload_id")
    if upload is None and not upload_id:
        context = await store_work.run(
            _index,
            state,
            caller,
            status=400,
            problems={"file": ["choose the CSV file to import"]},
            posted=fields,
        )
        return await arender(request, "imports/index.html", **context)
    if upload is not None:
        try:
            mapped.read_csv_bytes(upload[1])
        except InvalidInput as exc:
            context = await store_work.run(
                _index,
                state,
                caller,
                status=400,
                problems=_by_field(exc.problems),
                posted=fields,
            )
            return await arender(request, "imports/index.html", **context)

        def stage(conn: Connection) -> str:
            return mapped.stage_upload(
                conn, business_id=caller.business_id, filename=upload[0], content=upload[1]
            )

        upload_id = await store_work.write(state, stage)
    context = await store_work.run(
        _preview_context,
        state,
        caller,
        upload_id=upload_id,
        choice=choice,
        fields=fields,
        fresh=upload is not None and choice == "custom",
    )
    return await arender(request, "imports/preview.html", **context)


@router.post("/imports/mappings")
async def save_mapping_page(request: Request, state: State, caller: Manager) -> Response:
    """Save the form's mapping under a name (from the preview page)."""
    form = await request.form()
    fields = _fields(form)
    upload_id = _text(form, "upload_id")
    name = _text(form, "mapping_name")
    try:
        chosen = mapping_from_fields(fields)

        def save(conn: Connection) -> None:
            mapped.save_mapping(conn, business_id=caller.business_id, name=name, mapping=chosen)

        await store_work.write(state, save)
    except InvalidInput as exc:
        context = await store_work.run(
            _preview_context, state, caller, upload_id=upload_id, choice="custom", fields=fields
        )
        context["status"] = 400
        for problem in exc.problems:
            where = "mapping_name" if problem.field == "name" else problem.field
            context["problems"].setdefault(where, []).append(problem.reason)
        context["mapping_name"] = name
        return await arender(request, "imports/preview.html", **context)
    context = await store_work.run(
        _preview_context,
        state,
        caller,
        upload_id=upload_id,
        choice=f"saved:{name}",
        fields=fields,
        notice=f"Mapping {name!r} saved",
    )
    return await arender(request, "imports/preview.html", **context)


@router.post("/imports/mappings/{name}/delete")
async def delete_mapping_page(
    request: Request, name: str, state: State, caller: Manager
) -> Response:
    def work(conn: Connection) -> None:
        mapped.delete_mapping(conn, business_id=caller.business_id, name=name)

    await store_work.write(state, work)
    return redirect(request, "/imports", notice=f"Mapping {name!r} deleted")


def _run(state: AppState, caller: Caller, *, upload_id: str, fields: dict[str, str]) -> str:
    """Import a staged upload with the form's mapping; the report's id."""
    with state.store.read() as conn:
        filename, raw = mapped.staged_upload(
            conn, business_id=caller.business_id, upload_id=upload_id
        )
    csv_file = mapped.read_csv_bytes(raw)
    chosen = mapping_from_fields(fields)
    check_columns(chosen, csv_file.header)
    with state.store.write() as conn:
        source = internal_source(conn, business_id=caller.business_id, kind="import", name="import")
    report = mapped.import_mapped(
        state.store,
        source=source,
        rows=csv_file.rows,
        mapping=chosen,
        gate=state.gate,
        limits=state.limits,
        record_consents=ledger_recorder(
            state.store, business_id=caller.business_id, filename=filename
        ),
    )
    with state.store.write() as conn:
        report_id = mapped.save_report(
            conn,
            business_id=caller.business_id,
            filename=filename,
            mapping_name=fields.get("mapping_label") or "form",
            report=report,
        )
        mapped.drop_upload(conn, business_id=caller.business_id, upload_id=upload_id)
    return report_id


@router.post("/imports/run")
async def run_page(request: Request, state: State, caller: Manager) -> Response:
    form = await request.form()
    fields = _fields(form)
    upload_id = _text(form, "upload_id")
    try:
        report_id = await store_work.run(_run, state, caller, upload_id=upload_id, fields=fields)
    except InvalidInput:
        context = await store_work.run(
            _preview_context, state, caller, upload_id=upload_id, choice="custom", fields=fields
        )
        context["status"] = 400
        return await arender(request, "imports/preview.html", **context)
    return redirect(request, f"/imports/{report_id}", notice="Import done")


def result_chart(report: dict[str, Any]) -> Chart:
    """Accepted (stored now, or already stored), dropped by consent, rejected rows."""
    return Chart(
        title="Accepted and rejected",
        x=["stored now", "already stored", "dropped by consent", "rejected rows"],
        series=[
            Series(
                "rows and events",
                [
                    report["stored"],
                    report["duplicates"],
                    report["dropped_by_consent"],
                    report["rejected_rows"],
                ],
            )
        ],
        kind="bar",
        y_title="count",
    )


@router.get("/imports/{report_id}")
async def result_page(request: Request, report_id: str, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        return mapped.get_report(conn, business_id=caller.business_id, report_id=report_id)

    report = await store_work.read(state, work)
    return await arender(
        request, "imports/result.html", caller=caller, report=report, chart=result_chart(report)
    )


@router.get("/imports/{report_id}/rejected.csv")
async def rejected_download(
    request: Request, report_id: str, state: State, caller: Reader
) -> Response:
    def work(conn: Connection) -> dict[str, Any]:
        return mapped.get_report(conn, business_id=caller.business_id, report_id=report_id)

    report = await store_work.read(state, work)
    return Response(
        mapped.rejected_csv(report["rejected"]),
        media_type="text/csv; charset=utf-8",
        headers=attachment(f"{report_id}-rejected.csv"),
    )


@router.post("/imports/consent-records", dependencies=[Limited])
async def prior_records_page(request: Request, state: State, caller: ConsentManager) -> Response:
    """Another CMP's consent records (subject, purposes, time, notice), marked as imported."""
    form = await request.form()
    fields = _fields(form)
    origin = _text(form, "origin")
    subject_kind = _text(form, "subject_kind") or "anonymous_id"
    problems: list[FieldProblem] = []
    if not origin or len(origin) > 200:
        problems.append(FieldProblem("origin", "name the CMP the records come from"))
    if subject_kind not in SUBJECT_KINDS:
        problems.append(FieldProblem("subject_kind", f"use {' or '.join(SUBJECT_KINDS)}"))
    upload = await _upload_of(form, state)
    if upload is None:
        problems.append(FieldProblem("cmp_file", "choose the CSV file of consent records"))
    prior: PriorRecords | None = None
    if not problems and upload is not None:
        try:
            csv_file = mapped.read_csv_bytes(upload[1])
            missing = [c for c in ("subject", "purposes", "time") if c not in csv_file.header]
            if missing:
                raise InvalidInput(
                    [FieldProblem("cmp_file", f"the file has no column {', '.join(missing)}")]
                )
            prior = await store_work.run(
                lambda: import_prior_records(
                    state.store,
                    business_id=caller.business_id,
                    rows=csv_file.rows,
                    origin=origin,
                    subject_kind=subject_kind,
                )
            )
        except InvalidInput as exc:
            problems = [
                FieldProblem("cmp_file" if p.field == "file" else p.field, p.reason)
                for p in exc.problems
            ]
    chart = None
    if prior is not None:
        chart = Chart(
            title="Consent records",
            x=["recorded", "already in the ledger", "rejected rows"],
            series=[
                Series(
                    "records",
                    [prior.recorded, prior.already, len({r["row"] for r in prior.rejected})],
                )
            ],
            kind="bar",
        )
    context = await store_work.run(
        _index,
        state,
        caller,
        status=400 if problems else 200,
        problems=_by_field(problems),
        posted=fields,
        prior=prior,
        prior_chart=chart,
    )
    return await arender(request, "imports/index.html", **context)
