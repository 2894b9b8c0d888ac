"""The recommendations pages: the served model, training runs and their holdout quality,
a preview for any profile, and the product catalogue with its CSV import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.process import job_admin
from accord.recommend import catalogue, service, serving
from accord.recommend.api import JOB, MAX_IMPORT_BYTES
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.jobs import run_soon
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect, render

router = APIRouter(include_in_schema=False)
nav = [
    NavEntry("Recommendations", "/recommendations", "reports.read", "Customers", 20),
    NavEntry("Product catalogue", "/recommendations/catalogue", "reports.read", "Customers", 21),
]

Reader = Annotated[Caller, Depends(requires("reports.read"))]
Editor = Annotated[Caller, Depends(requires("assets.manage"))]
Trainer = Annotated[Caller, Depends(requires("jobs.manage"))]
PAGE_ROWS = 100


def quality_chart(run: service.Run) -> Chart:
    models = run.evaluation.get("models", [])
    return Chart(
        title="Holdout quality: each buyer's last order held out",
        x=[m["model"] for m in models],
        series=[
            Series("hit rate@10", [m["hit_rate"] for m in models]),
            Series("NDCG@10", [m["ndcg"] for m in models]),
        ],
        kind="bar",
        fmt="percent",
        x_title="model",
        y_title="share of people",
        id="chart-quality",
        notes=("Popularity is the baseline; the better of co-occurrence and ALS is served.",),
    )


def runs_chart(runs: list[service.Run]) -> Chart:
    ended = [run for run in reversed(runs) if run.seconds is not None]
    return Chart(
        title="Duration of the last trainings",
        x=[f"{run.started_at:%Y-%m-%d %H:%M} {run.status}" for run in ended],
        series=[Series("seconds", [run.seconds for run in ended])],
        kind="bar",
        fmt="seconds",
        x_title="training (UTC)",
        y_title="seconds",
        id="chart-training-runs",
    )


@router.get("/recommendations")
def recommendations_page(
    request: Request,
    state: State,
    caller: Reader,
    profile_id: str = "",
    context: str = "",
) -> HTMLResponse:
    kinds = {JOB: state.job_kinds[JOB]} if JOB in state.job_kinds else {}
    preview: dict[str, Any] | None = None
    problem = ""
    with state.store.read() as conn:
        runs = service.runs(conn, business_id=caller.business_id)
        jobs = job_admin.list_jobs(conn, kinds, business_id=caller.business_id) if kinds else []
        if profile_id:
            try:
                answer = serving.recommend(
                    conn,
                    business_id=caller.business_id,
                    profile_id=profile_id.strip(),
                    context=serving.parse_context(context.strip() or None),
                    limit=10,
                )
                recent = service.recently_viewed(
                    conn, business_id=caller.business_id, profile_id=profile_id.strip()
                )
                preview = {"answer": answer, "json": answer.as_json(), "recent": recent}
            except InvalidInput as exc:
                problem = str(exc)
    finished = [r for r in runs if r.status == "ok"]
    served = finished[0] if finished else None
    return render(
        request,
        "recommend/index.html",
        caller=caller,
        runs=runs,
        served=served,
        quality=quality_chart(served) if served and served.evaluation.get("models") else None,
        runs_chart=runs_chart(runs) if runs else None,
        job=next(iter(jobs), None),
        can_train=caller.can("jobs.manage") and bool(kinds),
        profile_id=profile_id,
        context=context,
        preview=preview,
        problem=problem,
    )


@router.post("/recommendations/train")
async def train_page(request: Request, state: State, caller: Trainer) -> Response:
    if JOB not in state.job_kinds:
        return redirect(request, "/recommendations", error=f"this server runs no {JOB} job")
    await run_soon(state, business_id=caller.business_id, name=JOB)
    return redirect(
        request,
        "/recommendations",
        notice="Training asked for: the worker starts it within seconds; reload to see it.",
    )


def _catalogue(state: AppState, caller: Caller, offset: int) -> dict[str, Any]:
    with state.store.read() as conn:
        total, items, updated = catalogue.listing(
            conn, business_id=caller.business_id, limit=PAGE_ROWS, offset=offset
        )
    return {
        "total": total,
        "items": items,
        "updated": updated,
        "offset": offset,
        "rows": PAGE_ROWS,
        "can_edit": caller.can("assets.manage"),
        "columns": catalogue.COLUMNS,
    }


@router.get("/recommendations/catalogue")
async def catalogue_page(
    request: Request, state: State, caller: Reader, offset: int = 0
) -> HTMLResponse:
    if offset < 0:
        raise NotFound("page")
    context = await store_work.run(_catalogue, state, caller, offset)
    return await arender(request, "recommend/catalogue.html", caller=caller, **context)


@router.post("/recommendations/catalogue/import")
async def import_page(request: Request, state: State, caller: Editor) -> Response:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return redirect(request, "/recommendations/catalogue", error="choose a CSV file")
    raw = await upload.read(MAX_IMPORT_BYTES + 1)
    try:
        if len(raw) > MAX_IMPORT_BYTES:
            raise InvalidInput([FieldProblem("file", f"over {MAX_IMPORT_BYTES} bytes")])
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput([FieldProblem("file", "CSV must be UTF-8")]) from None
        parsed = await store_work.run(catalogue.parse_csv, text)
    except InvalidInput as exc:
        return redirect(request, "/recommendations/catalogue", error=str(exc)[:400])

    def work(conn: Any) -> int:
        return catalogue.upsert(conn, business_id=caller.business_id, items=parsed)

    saved = await store_work.write(state, work)
    return redirect(request, "/recommendations/catalogue", notice=f"{saved} products saved.")
