"""The jobs page of the admin UI: schedules, next and last runs, failures, run now, history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from markupsafe import Markup

from accord.core.errors import AccordError
from accord.process import job_admin, scheduler
from accord.process.models import JobChange, JobRunView, JobView
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Jobs", "/jobs", "jobs.read", "Settings", 90)]

Reader = Annotated[Caller, Depends(requires("jobs.read"))]
Manager = Annotated[Caller, Depends(requires("jobs.manage"))]

HISTORY_ROWS = 60
COLOURS = {"succeeded": "#1f7a3f", "failed": "#b3261e", "timed_out": "#a15c00", "lost": "#6b7280"}


def duration_chart(runs: Sequence[JobRunView], *, width: int = 640, height: int = 120) -> Markup:
    """Run durations, oldest to newest, one bar each, coloured by outcome (inline SVG)."""
    ended = [r for r in reversed(runs) if r.seconds is not None]
    if not ended:
        return Markup("")
    longest = max(r.seconds or 0.0 for r in ended) or 1.0
    step = width / len(ended)
    bars = []
    for i, run in enumerate(ended):
        bar = max(2.0, (run.seconds or 0.0) / longest * (height - 4))
        bars.append(
            Markup(
                '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{c}">'
                "<title>{name} {status} in {s:.2f} s at {at}</title></rect>"
            ).format(
                x=i * step,
                y=height - bar,
                w=max(step - 1, 1),
                h=bar,
                c=COLOURS.get(run.status, "#6b7280"),
                name=run.name,
                status=run.status,
                s=run.seconds or 0.0,
                at=run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            )
        )
    label = f"Durations of the last {len(ended)} runs; the longest took {longest:.2f} s"
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%" height="{h}">'
        "<title>{label}</title>{bars}</svg>"
    ).format(w=width, h=height, label=label, bars=Markup("").join(bars))


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
