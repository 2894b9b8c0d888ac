"""`accord worker` and `accord jobs …`: the inbox worker, the scheduled jobs and their history."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

import typer

from accord.cli_common import (
    FAILED,
    AsJson,
    console,
    echo_json,
    print_table,
    progress,
    some_business_id,
    state_store,
    stop_on_signals,
)
from accord.core.settings import Settings
from accord.process import claims, job_admin, scheduler
from accord.process.jobs import default_kinds
from accord.process.worker import drain, pending_count
from accord.process.worker import run as run_worker_loop
from accord.store.db import Store
from accord.store.migrate import upgrade

jobs_app = typer.Typer(help="Scheduled jobs: list, run now, history.", no_args_is_help=True)

SomeBusiness = Annotated[
    str | None,
    typer.Option(
        "--business",
        help="One business (id or write key); without it, the installation's own jobs",
    ),
]


def run_worker(
    once: Annotated[bool, typer.Option(help="Drain the inbox once and exit")] = False,
) -> None:
    """Process the inbox, run journeys and scheduled jobs; run several on PostgreSQL."""
    logging.basicConfig(level=logging.INFO)
    settings = Settings()
    upgrade(settings.resolved_database_url())
    stopping = stop_on_signals()
    run_worker_loop(
        settings,
        should_stop=stopping.is_set,
        on_processed=lambda n: console.print(f"processed {n} events"),
        once=once,
    )


def drain_with_progress(store: Store, settings: Settings) -> int:
    """Process every pending inbox event now, with a progress bar; how many there were."""
    total = pending_count(store)
    if not total:
        return 0
    with progress() as bar:
        task = bar.add_task("processing", total=total)
        return drain(
            store,
            lake_url=settings.resolved_lake_url(),
            batch_size=settings.worker_batch_size,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            take_over_all=store.dialect == "sqlite",
            on_batch=lambda n: bar.advance(task, n),
        )


def _when(value: object) -> str:
    return "" if value is None else str(value)[:19]


@jobs_app.command("list")
def list_jobs(business: SomeBusiness = None, as_json: AsJson = False) -> None:
    """The jobs, their schedules, next due time and last outcome."""
    settings, kinds = Settings(), default_kinds()
    with state_store(settings) as store:
        business_id = some_business_id(store, business)
        scheduler.sync(store, kinds, settings=settings)
        with store.read() as conn:
            views = job_admin.list_jobs(conn, kinds, business_id=business_id)
    if as_json:
        echo_json(views)
        return
    print_table(
        "job",
        "object",
        "schedule",
        "next due (UTC)",
        "last",
        "finished (UTC)",
        rows=[
            (
                view.name,
                view.target_label or view.target or "",
                f"{view.schedule} ({view.timezone})" if view.enabled else "off",
                _when(view.next_due_at),
                view.last_status or "never",
                _when(view.last_finished_at),
            )
            for view in views
        ],
    )


@jobs_app.command("run")
def run_job(
    name: Annotated[str, typer.Argument(help="Job name, e.g. audiences.refresh")],
    business: SomeBusiness = None,
    target: Annotated[
        str | None, typer.Option(help="One object of a per-object job (an audience id)")
    ] = None,
) -> None:
    """Run a job now, in this process, and wait for it (it is recorded in the history)."""
    settings, kinds = Settings(), default_kinds()
    worker_name = f"cli:{claims.worker_name()}"
    failed = 0
    with state_store(settings) as store:
        business_id = some_business_id(store, business)
        scheduler.sync(store, kinds, settings=settings)
        with store.write() as conn:
            ids = job_admin.request_run(
                conn, kinds, business_id=business_id, name=name, target=target
            )
        for job_id in ids:
            # One at a time, so that each run's duration is its own.
            claimed = claims.claim(store, kinds, worker=worker_name, limit=1, only=[job_id])
            if not claimed:
                console.print(f"{job_id} runs on a worker right now; left to it")
                continue
            job = claimed[0]
            outcome, error = claims.execute(store, settings, kinds, job, worker=worker_name)
            claims.finish(
                store,
                kinds,
                job,
                worker=worker_name,
                outcome=outcome,
                error=error,
                status="succeeded" if error is None else "failed",
            )
            label = f"{job.name} {job.target or ''}".strip()
            if error is None and outcome is not None:
                did = ", ".join(f"{k} {v:g}" for k, v in outcome.counts.items())
                console.print(f"[green]{label}[/green]: {did or 'done'}")
            else:
                failed += 1
                console.print(f"[red]{label} failed[/red]\n{error}")
    if failed:
        raise typer.Exit(FAILED)


@jobs_app.command("history")
def history(
    business: SomeBusiness = None,
    name: Annotated[str | None, typer.Option(help="Only this job")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 30,
) -> None:
    """The latest runs, newest first."""
    with state_store() as store:
        business_id = some_business_id(store, business)
        with store.read() as conn:
            runs = job_admin.history(conn, business_id=business_id, name=name, limit=limit)
    print_table(
        "started (UTC)",
        "job",
        "object",
        "status",
        "attempt",
        "seconds",
        "did",
        rows=[
            (
                _when(run.started_at),
                run.name,
                run.target or "",
                run.status,
                run.attempt,
                "" if run.seconds is None else f"{run.seconds:.2f}",
                ", ".join(f"{k} {v:g}" for k, v in run.counts.items()) or (run.error or "")[-120:],
            )
            for run in runs
        ],
    )
