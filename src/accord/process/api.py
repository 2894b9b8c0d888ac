"""Admin API of the job scheduler: the business's jobs, their history, run now, schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection

from accord.process import job_admin, scheduler
from accord.process.models import JobChange, JobRunView, JobView, RunRequest
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.state import AppState, State

router = APIRouter(prefix="/api", tags=["jobs"])

Reader = Annotated[Caller, Depends(requires("jobs.read"))]
Manager = Annotated[Caller, Depends(requires("jobs.manage"))]


def _jobs(state: AppState, business_id: str) -> list[JobView]:
    # A business created since the worker's last look has its jobs at once.
    scheduler.sync(state.store, state.job_kinds, settings=state.settings, business_id=business_id)
    with state.store.read() as conn:
        return job_admin.list_jobs(conn, state.job_kinds, business_id=business_id)


@router.get("/jobs", summary="The business's jobs: schedules, next and last runs")
async def list_jobs(state: State, caller: Reader) -> list[JobView]:
    return await store_work.run(_jobs, state, caller.business_id)


@router.get("/jobs/history", summary="Runs of the business's jobs, newest first")
async def job_history(
    state: State,
    caller: Reader,
    name: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[
        str | None, Query(pattern="^(running|succeeded|failed|timed_out|lost)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobRunView]:
    return await store_work.read(
        state,
        lambda conn: job_admin.history(
            conn, business_id=caller.business_id, name=name, status=status, limit=limit
        ),
    )


@router.post(
    "/jobs/{name}/run",
    status_code=202,
    summary="Run a job now (every object's, or one object's with `target`)",
)
async def run_job(
    state: State, caller: Manager, name: str, body: RunRequest | None = None
) -> list[JobView]:
    target = body.target if body is not None else None

    def work(conn: Connection) -> list[JobView]:
        ids = set(
            job_admin.request_run(
                conn, state.job_kinds, business_id=caller.business_id, name=name, target=target
            )
        )
        views = job_admin.list_jobs(conn, state.job_kinds, business_id=caller.business_id)
        return [v for v in views if v.id in ids]

    await store_work.run(
        scheduler.sync,
        state.store,
        state.job_kinds,
        settings=state.settings,
        business_id=caller.business_id,
    )
    return await store_work.write(state, work)


@router.patch("/jobs/{name}", summary="Change a job's schedule, time zone or enabled flag")
async def change_job(state: State, caller: Manager, name: str, body: JobChange) -> list[JobView]:
    await store_work.run(
        scheduler.sync,
        state.store,
        state.job_kinds,
        settings=state.settings,
        business_id=caller.business_id,
    )
    return await store_work.write(
        state,
        lambda conn: job_admin.change(
            conn, state.job_kinds, business_id=caller.business_id, name=name, body=body
        ),
    )
