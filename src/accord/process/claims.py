"""Claiming due jobs under a lease, running one, and recording its end: the history row,
the next due time, or a retry with backoff."""

from __future__ import annotations

import logging
import os
import socket
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update

from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.process.kinds import JobContext, JobKind, JobOutcome, Kinds
from accord.process.models import job_runs, jobs
from accord.process.schedule import parse_schedule
from accord.store.db import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
# A worker renews the leases of the runs it is running (a heartbeat every third of this);
# the lease of a worker that stopped runs out after at most this long.
LEASE = timedelta(seconds=60)
ERROR_CHARS = 4000


@dataclass(frozen=True)
class Claimed:
    job_id: str
    run_id: int
    business_id: str | None
    name: str
    target: str | None
    schedule: str
    timezone: str
    enabled: bool
    attempt: int
    due_at: datetime
    state: dict[str, Any]
    deadline: datetime


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def next_due(store: Store) -> datetime | None:
    """When the next job is due (a cheap read: the loop sleeps until then)."""
    with store.read() as conn:
        value: datetime | None = conn.execute(
            select(func.min(jobs.c.next_due_at)).where(jobs.c.next_due_at.is_not(None))
        ).scalar()
    return value


def _claimable(now: datetime) -> Any:
    return and_(
        jobs.c.next_due_at.is_not(None),
        jobs.c.next_due_at <= now,
        or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
    )


def claim(
    store: Store,
    kinds: Kinds,
    *,
    worker: str,
    limit: int,
    now: datetime | None = None,
    only: Iterable[str] | None = None,
    lease: timedelta = LEASE,
) -> list[Claimed]:
    """Take up to `limit` due jobs (or the jobs `only` names, when due) for this worker."""
    now = now or utcnow()
    if limit <= 0:
        return []
    with store.read() as conn:
        # A read first: on SQLite a write transaction takes the one write lock.
        if conn.execute(select(jobs.c.id).where(_claimable(now)).limit(1)).first() is None:
            return []
    claimed: list[Claimed] = []
    with store.write() as conn:
        query = (
            select(jobs)
            .where(_claimable(now), jobs.c.name.in_(list(kinds)))
            .order_by(jobs.c.next_due_at, jobs.c.id)
            .limit(limit)
        )
        if only is not None:
            query = query.where(jobs.c.id.in_(list(only)))
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        # Runs left unfinished by a worker that stopped: their lease ran out.
        conn.execute(
            update(job_runs)
            .where(job_runs.c.job_id.in_(ids), job_runs.c.status == "running")
            .values(
                status="lost",
                finished_at=now,
                error="the worker running it stopped, or it outlived its lease",
            )
        )
        deadlines = {row.id: now + kinds[row.name].timeout for row in rows}
        # Set-based: one statement for the leases, one for the runs, however many jobs.
        conn.execute(
            update(jobs)
            .where(jobs.c.id == bindparam("job"))
            .values(
                lease_until=bindparam("lease"),
                lease_owner=worker,
                last_status="running",
                last_started_at=now,
                updated_at=now,
            ),
            [{"job": row.id, "lease": now + lease} for row in rows],
        )
        run_ids = conn.execute(
            insert(job_runs).returning(job_runs.c.id, sort_by_parameter_order=True),
            [
                {
                    "job_id": row.id,
                    "business_id": row.business_id,
                    "name": row.name,
                    "target": row.target,
                    "attempt": row.attempt + 1,
                    "due_at": row.next_due_at,
                    "started_at": now,
                    "status": "running",
                    "counts": "{}",
                    "worker": worker,
                }
                for row in rows
            ],
        ).scalars()
        for row, run_id in zip(rows, run_ids, strict=True):
            claimed.append(
                Claimed(
                    job_id=row.id,
                    run_id=int(run_id),
                    business_id=row.business_id,
                    name=row.name,
                    target=row.target,
                    schedule=row.schedule,
                    timezone=row.timezone,
                    enabled=row.enabled,
                    attempt=row.attempt,
                    due_at=row.next_due_at,
                    state=orjson.loads(row.state),
                    deadline=deadlines[row.id],
                )
            )
    return claimed


def _after_success(job: Claimed, now: datetime) -> datetime | None:
    if not job.enabled:
        return None
    schedule = parse_schedule(job.schedule, timezone=job.timezone)
    due = schedule.next_after(job.due_at)
    # A run that took longer than the interval does not queue up missed occurrences.
    return due if due > now else schedule.next_after(now)


@dataclass(frozen=True)
class Ended:
    """How one claimed run ended."""

    job: Claimed
    outcome: JobOutcome | None
    error: str | None = None
    status: Literal["succeeded", "failed", "timed_out"] = "succeeded"


def finish(
    store: Store,
    kinds: Kinds,
    job: Claimed,
    *,
    worker: str,
    outcome: JobOutcome | None,
    error: str | None = None,
    status: Literal["succeeded", "failed", "timed_out"] = "succeeded",
    now: datetime | None = None,
) -> None:
    """Record the run and set when the job is next due (its schedule, or a retry)."""
    finish_many(store, kinds, [Ended(job, outcome, error, status)], worker=worker, now=now)


def finish_many(
    store: Store, kinds: Kinds, ended: list[Ended], *, worker: str, now: datetime | None = None
) -> None:
    """Record several ended runs in one transaction, with one statement per table."""
    now = now or utcnow()
    if not ended:
        return
    quiet: list[int] = []
    runs: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    for item in ended:
        kind = kinds[item.job.name]
        counts = item.outcome.counts if item.outcome is not None else {}
        error = None if item.error is None else item.error[-ERROR_CHARS:]
        if item.status == "succeeded" and kind.quiet and not any(counts.values()):
            quiet.append(item.job.run_id)
        else:
            runs.append(
                {
                    "run": item.job.run_id,
                    "status": item.status,
                    "counts": orjson.dumps(counts).decode(),
                    "error": error,
                }
            )
        moves.append(_next_move(kind, item, error, now))
    with store.write() as conn:
        if quiet:
            conn.execute(
                delete(job_runs).where(job_runs.c.id.in_(quiet), job_runs.c.status == "running")
            )
        if runs:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id == bindparam("run"), job_runs.c.status == "running")
                .values(
                    status=bindparam("status"),
                    finished_at=now,
                    counts=bindparam("counts"),
                    error=bindparam("error"),
                ),
                runs,
            )
        # Only the lease holder moves a job on; a run taken over meanwhile is history only.
        conn.execute(
            update(jobs)
            .where(jobs.c.id == bindparam("job"), jobs.c.lease_owner == worker)
            .values(
                lease_until=None,
                lease_owner=None,
                last_status=bindparam("last_status"),
                last_finished_at=now,
                updated_at=now,
                attempt=bindparam("next_attempt"),
                last_error=bindparam("last_error"),
                next_due_at=bindparam("next_due"),
                state=bindparam("next_state"),
            ),
            moves,
        )


def _next_move(kind: JobKind, item: Ended, error: str | None, now: datetime) -> dict[str, Any]:
    """When the job runs next and what it keeps: its schedule, or a retry with backoff."""
    job = item.job
    state = job.state
    if item.status == "succeeded":
        attempt, due = 0, _after_success(job, now)
        if item.outcome is not None and item.outcome.state is not None:
            state = item.outcome.state
    else:
        attempt = job.attempt + 1
        if attempt < kind.max_attempts:
            due = now + min(kind.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        else:
            # Out of attempts: this occurrence is given up; the next one comes as usual.
            attempt, due = 0, _after_success(job, now)
    return {
        "job": job.job_id,
        "last_status": item.status,
        "next_attempt": attempt,
        "last_error": error,
        "next_due": due,
        "next_state": orjson.dumps(state).decode(),
    }


def execute(
    store: Store,
    settings: Settings,
    kinds: Kinds,
    job: Claimed,
    *,
    worker: str,
    now: datetime | None = None,
) -> tuple[JobOutcome | None, str | None]:
    """Run one claimed job in this thread, at `now` by its clock; returns its outcome or
    its error text."""
    context = JobContext(
        settings=settings,
        store=store,
        business_id=job.business_id,
        target=job.target,
        now=now or utcnow(),
        state=dict(job.state),
    )
    try:
        return kinds[job.name].run(context), None
    except Exception:
        log.exception("job %s (%s) failed", job.name, job.business_id or "installation")
        return None, traceback.format_exc()
