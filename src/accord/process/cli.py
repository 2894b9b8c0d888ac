"""`accord jobs …`: list the scheduled jobs, run one now, read their history."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.process import claims, job_admin, scheduler
from accord.process.jobs import default_kinds
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

jobs_app = typer.Typer(help="Scheduled jobs: list, run now, history.", no_args_is_help=True)
console = Console(stderr=True)

BusinessOption = Annotated[
    str | None,
    typer.Option("--business-id", help="One business; without it, the installation's own jobs"),
]


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _when(value: object) -> str:
    return "" if value is None else str(value)[:19]


@jobs_app.command("list")
def list_jobs(
    business_id: BusinessOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The jobs, their schedules, next due time and last outcome."""
    settings, kinds = Settings(), default_kinds()
    store = _store(settings)
    try:
        scheduler.sync(store, kinds, settings=settings)
        with store.read() as conn:
            views = job_admin.list_jobs(conn, kinds, business_id=business_id)
    finally:
        store.dispose()
    if as_json:
        typer.echo(orjson.dumps([v.model_dump(mode="json") for v in views]).decode())
        return
    table = Table("job", "object", "schedule", "next due (UTC)", "last", "finished (UTC)")
    for view in views:
        table.add_row(
            view.name,
            view.target_label or view.target or "",
            f"{view.schedule} ({view.timezone})" if view.enabled else "off",
            _when(view.next_due_at),
            view.last_status or "never",
            _when(view.last_finished_at),
        )
    Console().print(table)


@jobs_app.command("run")
def run_job(
    name: Annotated[str, typer.Argument(help="Job name, e.g. audiences.refresh")],
    business_id: BusinessOption = None,
    target: Annotated[
        str | None, typer.Option(help="One object of a per-object job (an audience id)")
    ] = None,
) -> None:
    """Run a job now, in this process, and wait for it (it is recorded in the history)."""
    settings, kinds = Settings(), default_kinds()
    store = _store(settings)
    worker = f"cli:{claims.worker_name()}"
    failed = 0
    try:
        scheduler.sync(store, kinds, settings=settings)
        with store.write() as conn:
            ids = job_admin.request_run(
                conn, kinds, business_id=business_id, name=name, target=target
            )
        for job_id in ids:
            # One at a time, so that each run's duration is its own.
            claimed = claims.claim(store, kinds, worker=worker, limit=1, only=[job_id])
            if not claimed:
                console.print(f"{job_id} runs on a worker right now; left to it")
                continue
            job = claimed[0]
            outcome, error = claims.execute(store, settings, kinds, job, worker=worker)
            claims.finish(
                store,
                kinds,
                job,
                worker=worker,
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
    except AccordError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from None
    finally:
        store.dispose()
    if failed:
        raise typer.Exit(code=1)


@jobs_app.command("history")
def history(
    business_id: BusinessOption = None,
    name: Annotated[str | None, typer.Option(help="Only this job")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 30,
) -> None:
    """The latest runs, newest first."""
    settings = Settings()
    store = _store(settings)
    try:
        with store.read() as conn:
            runs = job_admin.history(conn, business_id=business_id, name=name, limit=limit)
    finally:
        store.dispose()
    table = Table("started (UTC)", "job", "object", "status", "attempt", "seconds", "did")
    for run in runs:
        table.add_row(
            _when(run.started_at),
            run.name,
            run.target or "",
            run.status,
            str(run.attempt),
            "" if run.seconds is None else f"{run.seconds:.2f}",
            ", ".join(f"{k} {v:g}" for k, v in run.counts.items()) or (run.error or "")[-120:],
        )
    Console().print(table)
