"""The jobs page of the admin UI: schedules, next and last runs, failures, run now, history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from accord.core.errors import AccordError
from accord.process import job_admin, scheduler
from accord.process.models import JobChange, JobRunView, JobView
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Jobs", "/jobs", "jobs.read", "Settings", 90)]

Reader = Annotated[Caller, Depends(requires("jobs.read"))]
Manager = Annotated[Caller, Depends(requires("jobs.manage"))]

HISTORY_ROWS = 60
OUTCOMES = {"succeeded": "Succeeded", "failed": "Failed", "timed_out": "Timed out", "lost": "Lost"}


def duration_chart(runs: Sequence[JobRunView]) -> Chart:
    """Run durations, oldest to newest, one bar each, one series per outcome."""
    ended = [r for r in reversed(runs) if r.seconds is not None]
    return Chart(
        title="Duration of the recent runs",
        # The run's number keeps two runs started in the same second apart.
        x=[f"{r.started_at:%Y-%m-%d %H:%M:%S} {r.name} #{r.id}" for r in ended],
        series=[
            Series(label, [r.seconds if r.status == status else None for r in ended])
            for status, label in OUTCOMES.items()
            if any(r.status == status for r in ended)
        ],
        kind="stacked",
        fmt="seconds",
        x_title="Run (started, UTC)",
        y_title="Seconds",
        id="run-durations",
    )


def _page_data(state: AppState, business_id: str) -> tuple[list[JobView], list[JobRunView]]:
    scheduler.sync(state.store, state.job_kinds, settings=state.settings, business_id=business_id)
    with state.store.read() as conn:
        views = job_admin.list_jobs(conn, state.job_kinds, business_id=business_id)
        runs = job_admin.history(conn, business_id=business_id, limit=HISTORY_ROWS)
    return views, runs


@dataclass
class JobGroup:
    """The jobs of one kind: one row on the page, its objects' jobs folded beneath it."""

    first: JobView
    members: list[JobView]

    @property
    def per_object(self) -> bool:
        return self.first.scope == "object"

    @property
    def next_due_at(self) -> datetime | None:
        dues = [m.next_due_at for m in self.members if m.next_due_at is not None]
        return min(dues) if dues else None

    @property
    def running(self) -> int:
        return sum(1 for m in self.members if m.running)

    @property
    def last_status(self) -> str | None:
        statuses = {m.last_status for m in self.members if m.last_status}
        for worst in ("failed", "timed_out", "lost", "running", "succeeded"):
            if worst in statuses:
                return worst
        return None

    @property
    def last_finished_at(self) -> datetime | None:
        ends = [m.last_finished_at for m in self.members if m.last_finished_at is not None]
        return max(ends) if ends else None

    @property
    def last_error(self) -> str | None:
        return next((m.last_error for m in self.members if m.last_error), None)

    @property
    def schedules(self) -> set[str]:
        return {f"{m.schedule} ({m.timezone})" for m in self.members}


def groups_of(views: Sequence[JobView]) -> list[JobGroup]:
    by_name: dict[str, list[JobView]] = {}
    for view in views:
        by_name.setdefault(view.name, []).append(view)
    return [JobGroup(first=members[0], members=members) for members in by_name.values()]


@router.get("/jobs")
async def jobs_page(request: Request, state: State, caller: Reader) -> Response:
    views, runs = await store_work.run(_page_data, state, caller.business_id)
    failures = [r for r in runs if r.status in ("failed", "timed_out", "lost")]
    labels = {v.target: v.target_label for v in views if v.target and v.target_label}
    return await arender(
        request,
        "jobs/list.html",
        caller=caller,
        groups=groups_of(views),
        labels=labels,
        runs=runs,
        failures=failures,
        chart=duration_chart(runs),
        can_manage=caller.can("jobs.manage"),
    )


@router.post("/jobs/{name}/run")
async def run_now(
    request: Request,
    state: State,
    caller: Manager,
    name: str,
    target: Annotated[str | None, Form(max_length=40)] = None,
) -> Response:
    def work() -> int:
        with state.store.write() as conn:
            return len(
                job_admin.request_run(
                    conn,
                    state.job_kinds,
                    business_id=caller.business_id,
                    name=name,
                    target=target or None,
                )
            )

    try:
        count = await store_work.run(work)
    except AccordError as exc:
        return redirect(request, "/jobs", error=str(exc))
    return redirect(request, "/jobs", notice=f"{name}: {count} job(s) will run within seconds")


@router.post("/jobs/{name}/schedule")
async def change_schedule(
    request: Request,
    state: State,
    caller: Manager,
    name: str,
    schedule: Annotated[str, Form(max_length=100)],
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    enabled: Annotated[str | None, Form(max_length=5)] = None,
    target: Annotated[str | None, Form(max_length=40)] = None,
) -> Response:
    body = JobChange(
        target=target or None, schedule=schedule, timezone=timezone, enabled=enabled == "on"
    )

    def work() -> int:
        with state.store.write() as conn:
            return len(
                job_admin.change(
                    conn, state.job_kinds, business_id=caller.business_id, name=name, body=body
                )
            )

    try:
        await store_work.run(work)
    except AccordError as exc:
        return redirect(request, "/jobs", error=str(exc))
    return redirect(request, "/jobs", notice=f"{name}: schedule saved")
