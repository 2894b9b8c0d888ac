"""The predictions page: model cards, holdout AUC against the baseline, how the scores
spread over people, the last trainings, and "Train now" (the `predict.train` job)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from accord.core.clock import parse_instant
from accord.predict import service
from accord.process import job_admin
from accord.process.models import JobRunView, JobView
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.jobs import run_soon
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Predictions", "/predictions", "reports.read", "Customers", 19)]

Reader = Annotated[Caller, Depends(requires("reports.read"))]
# Training is the scheduler's `predict.train` job: asking for it is running a job now.
Trainer = Annotated[Caller, Depends(requires("jobs.manage"))]

JOB = "predict.train"
HISTORY_ROWS = 10


def models_dir(state: AppState) -> Path:
    return state.settings.data_dir / "models"


def auc_chart(cards: list[dict[str, Any]]) -> Chart:
    """Each likelihood model's holdout AUC beside its frequency-only baseline."""
    scored = [card for card in cards if "auc" in card.get("metrics", {})]
    return Chart(
        title="Holdout AUC against the frequency-only baseline",
        x=[card["model"] for card in scored],
        series=[
            Series("model", [card["metrics"]["auc"] for card in scored]),
            Series(
                "frequency-only baseline",
                [card["metrics"].get("baseline_auc_frequency_only") for card in scored],
            ),
        ],
        kind="bar",
        x_title="model",
        y_title="AUC",
        id="chart-auc",
        notes=("0.5 is a coin toss; a model is used only when it beats its baseline.",),
    )


def distribution_chart(found: service.ScoreDistribution) -> Chart:
    if found.kind == "likelihood":
        return Chart(
            title=f"People by {found.trait}",
            x=found.labels,
            series=[Series("people", found.values)],
            kind="bar",
            x_title="score",
            y_title="people",
            id=f"chart-{found.trait}",
        )
    return Chart(
        title=f"Mean {found.trait} by decile of people",
        x=found.labels,
        series=[Series(found.trait, found.values)],
        kind="bar",
        x_title="tenth of the people scored, lowest first",
        y_title="predicted value",
        id=f"chart-{found.trait}",
    )


def runs_chart(runs: list[JobRunView]) -> Chart:
    ended = [run for run in reversed(runs) if run.seconds is not None]
    return Chart(
        title="Duration of the last training jobs",
        x=[f"{run.started_at:%Y-%m-%d %H:%M} {run.status}" for run in ended],
        series=[Series("seconds", [run.seconds for run in ended])],
        kind="bar",
        fmt="seconds",
        x_title="job run (UTC)",
        y_title="seconds",
        id="chart-training-runs",
    )


def _job(found: list[JobView]) -> JobView | None:
    return next((job for job in found if job.name == JOB), None)


@router.get("/predictions")
def predictions_page(request: Request, state: State, caller: Reader) -> HTMLResponse:
    folder = models_dir(state)
    cards = service.model_cards(folder, business_id=caller.business_id)
    last = service.last_training(folder, business_id=caller.business_id)
    kinds = {JOB: state.job_kinds[JOB]} if JOB in state.job_kinds else {}
    with state.store.read() as conn:
        distributions = service.score_distributions(
            conn, business_id=caller.business_id, cards=cards
        )
        runs = job_admin.history(conn, business_id=caller.business_id, name=JOB, limit=HISTORY_ROWS)
        jobs = job_admin.list_jobs(conn, kinds, business_id=caller.business_id) if kinds else []
    return render(
        request,
        "predict/list.html",
        caller=caller,
        cards=cards,
        last=last,
        last_at=parse_instant(last["finished_at"]) if last else None,
        trained_at={card["model"]: parse_instant(card["trained_at"]) for card in cards},
        auc=auc_chart(cards),
        distributions=[(d, distribution_chart(d)) for d in distributions],
        runs=runs,
        runs_chart=runs_chart(runs),
        job=_job(jobs),
        can_train=caller.can("jobs.manage") and bool(kinds),
    )


@router.post("/predictions/train")
async def train_now(request: Request, state: State, caller: Trainer) -> Response:
    if JOB not in state.job_kinds:
        return redirect(request, "/predictions", error=f"this server runs no {JOB} job")
    await run_soon(state, business_id=caller.business_id, name=JOB)
    return redirect(
        request,
        "/predictions",
        notice="Training asked for: the worker starts it within seconds; reload to see it.",
    )
