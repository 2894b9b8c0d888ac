"""The job scheduler: due jobs are claimed from the state store, run, and kept in history.

A job is one kind of periodic work (refresh an audience, deliver webhooks, compact the
lake...) for one business, or for the whole installation. Its row holds its schedule
and when it is next due. A worker claims a due job by setting a lease on it in one
transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer at a time),
so an occurrence runs on one worker however many are running. The worker renews the
leases of its running jobs (a heartbeat); one that dies stops renewing, its leases run
out within a minute, and the jobs are claimed again with the unfinished runs recorded
as lost. On SQLite one worker owns the store, and frees every lease when it starts.
A run that raises is recorded with its error and retried with
exponential backoff up to its kind's attempts; a run past its timeout is recorded as
timed out and retried the same way (Python cannot stop a thread, so the late run may
still finish: every kind is idempotent for that reason). Nothing a job does stops the
scheduler.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from accord.accounts.models import businesses
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.process.models import JobChange, JobRunView, JobView, job_runs, jobs
from accord.process.schedule import parse_schedule, parse_timezone
from accord.store.db import Store

log = logging.getLogger(__name__)

Scope = Literal["installation", "business", "object"]
MAX_BACKOFF = timedelta(hours=1)
# A worker renews the leases of the runs it is running (a heartbeat every third of this);
# the lease of a worker that stopped runs out after at most this long.
LEASE = timedelta(seconds=60)
ERROR_CHARS = 4000


@dataclass(frozen=True)
class JobContext:
    """What a job's run is given: the tenant is explicit, as in every service call."""

    settings: Settings
    store: Store
    business_id: str | None
    target: str | None
    now: datetime
    # What this job kept from its previous runs.
    state: dict[str, Any]


@dataclass
class JobOutcome:
    counts: dict[str, float] = field(default_factory=dict)
    # Replaces the kept state when given.
    state: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobKind:
    """One kind of work, contributed by a context through its service."""

    name: str
    title: str
    run: Callable[[JobContext], JobOutcome]
    schedule: str
    scope: Scope = "business"
    # Per-object kinds: the business's objects, read in the sync's write transaction.
    targets: Callable[[Connection, str], list[str]] | None = None
    # Per-object kinds: a readable name for each of the business's objects.
    labels: Callable[[Connection, str], dict[str, str]] | None = None
    # Asked at each sync: should the job run now, before its schedule?
    wake: Callable[[Connection, JobContext], bool] | None = None
    first_run: Literal["now", "schedule"] = "now"
    timeout: timedelta = timedelta(minutes=10)
    max_attempts: int = 3
    backoff: timedelta = timedelta(seconds=30)
    # A frequent poll that found nothing to do leaves no history row (its job row
    # still shows when it last ran).
    quiet: bool = False
    # The triggers named in docs/ that this job carries out (see tests/process).
    triggers: tuple[str, ...] = ()


Kinds = Mapping[str, JobKind]


def _key(business_id: str | None, name: str, target: str | None) -> str:
    return f"{business_id or '-'}:{name}:{target or '-'}"


def _first_due(kind: JobKind, schedule: str, timezone: str, now: datetime) -> datetime:
    if kind.first_run == "now":
        return now
    return parse_schedule(schedule, timezone=timezone).next_after(now)


def _new_row(
    kind: JobKind, business_id: str | None, target: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id("job"),
        "business_id": business_id,
        "name": kind.name,
        "target": target,
        "key": _key(business_id, kind.name, target),
        "schedule": kind.schedule,
        "timezone": "UTC",
        "custom": False,
        "enabled": True,
        "next_due_at": _first_due(kind, kind.schedule, "UTC", now),
        "lease_until": None,
        "lease_owner": None,
        "attempt": 0,
        "state": "{}",
        "created_at": now,
        "updated_at": now,
    }


# Keeping the jobs in line with businesses and their objects -----------------------------


def sync(
    store: Store,
    kinds: Kinds,
    *,
    settings: Settings,
    now: datetime | None = None,
    business_id: str | None = None,
) -> int:
    """Create the jobs of new businesses and objects, drop those of deleted objects,
    follow changed default schedules, and wake jobs whose kind asks to run early.

    Returns how many jobs it created or removed.
    """
    now = now or utcnow()
    changed = 0
    try:
        with store.write() as conn:
            changed = _sync(
                conn, kinds, settings=settings, store=store, now=now, only_business=business_id
            )
    except IntegrityError:
        # Another worker created the same job at the same moment: it exists, as wanted.
        log.info("job sync raced another worker; it will look again")
    return changed


def _sync(
    conn: Connection,
    kinds: Kinds,
    *,
    settings: Settings,
    store: Store,
    now: datetime,
    only_business: str | None,
) -> int:
    query = select(jobs)
    ids = select(businesses.c.id).order_by(businesses.c.id)
    if only_business is not None:
        query = query.where(jobs.c.business_id == only_business)
        ids = ids.where(businesses.c.id == only_business)
    existing = {row.key: row for row in conn.execute(query).all()}
    business_ids = list(conn.execute(ids).scalars())
    wanted: set[str] = set()
    new_rows: list[dict[str, Any]] = []
    for kind in kinds.values():
        owners: list[tuple[str | None, str | None]]
        if kind.scope == "installation":
            owners = [] if only_business is not None else [(None, None)]
        elif kind.scope == "business":
            owners = [(b, None) for b in business_ids]
        else:
            assert kind.targets is not None, f"{kind.name} works per object but lists none"
            owners = [(b, t) for b in business_ids for t in kind.targets(conn, b)]
        for business_id, target in owners:
            key = _key(business_id, kind.name, target)
            wanted.add(key)
            if key not in existing:
                new_rows.append(_new_row(kind, business_id, target, now))
    if new_rows:
        conn.execute(insert(jobs), new_rows)
    gone = [row.id for key, row in existing.items() if row.name in kinds and key not in wanted]
    if gone:
        conn.execute(delete(jobs).where(jobs.c.id.in_(gone)))
    for key, row in existing.items():
        known = kinds.get(row.name)
        if known is None or key not in wanted:
            continue
        kind = known
        if not row.custom and row.schedule != kind.schedule:
            # A new release changed the default: jobs nobody customised follow it.
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(
                    schedule=kind.schedule,
                    next_due_at=_first_due(kind, kind.schedule, row.timezone, now),
                    updated_at=now,
                )
            )
        elif (
            kind.wake is not None
            and row.enabled
            and row.next_due_at is not None
            and row.next_due_at > now
            and row.lease_owner is None
        ):
            context = JobContext(
                settings=settings,
                store=store,
                business_id=row.business_id,
                target=row.target,
                now=now,
                state=orjson.loads(row.state),
            )
            if kind.wake(conn, context):
                conn.execute(
                    update(jobs).where(jobs.c.id == row.id).values(next_due_at=now, updated_at=now)
                )
    return len(new_rows) + len(gone)


# Claiming and finishing ------------------------------------------------------------------


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


# What people see and change --------------------------------------------------------------


def _view(row: Any, kinds: Kinds, now: datetime, label: str | None = None) -> JobView:
    kind = kinds[row.name]
    return JobView(
        id=row.id,
        name=row.name,
        title=kind.title,
        target=row.target,
        target_label=label,
        scope=kind.scope,
        schedule=row.schedule,
        default_schedule=kind.schedule,
        timezone=row.timezone,
        enabled=row.enabled,
        next_due_at=row.next_due_at,
        running=row.lease_until is not None and row.lease_until >= now,
        attempt=row.attempt,
        last_status=row.last_status,
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_error=row.last_error,
    )


def list_jobs(
    conn: Connection, kinds: Kinds, *, business_id: str | None, now: datetime | None = None
) -> list[JobView]:
    """A business's jobs (`None`: the installation's own), by name then object."""
    now = now or utcnow()
    owner = (
        jobs.c.business_id.is_(None) if business_id is None else jobs.c.business_id == business_id
    )
    rows = conn.execute(
        select(jobs).where(owner, jobs.c.name.in_(list(kinds))).order_by(jobs.c.name, jobs.c.target)
    ).all()
    labels: dict[str, dict[str, str]] = {}
    for kind in kinds.values():
        if kind.labels is not None and business_id is not None:
            labels[kind.name] = kind.labels(conn, business_id)
    return [_view(row, kinds, now, labels.get(row.name, {}).get(row.target or "")) for row in rows]


def _kind(kinds: Kinds, name: str) -> JobKind:
    kind = kinds.get(name)
    if kind is None:
        known = ", ".join(sorted(kinds))
        raise NotFound(f"job {name!r} (known jobs: {known})")
    return kind


def _selected(
    conn: Connection, kinds: Kinds, *, business_id: str | None, name: str, target: str | None
) -> list[Any]:
    """The rows a request names; an object of another business is simply not found."""
    kind = _kind(kinds, name)
    if kind.scope != "object" and target is not None:
        raise InvalidInput([FieldProblem("target", f"job {name!r} does not work per object")])
    owner = (
        jobs.c.business_id.is_(None) if business_id is None else jobs.c.business_id == business_id
    )
    query = select(jobs).where(owner, jobs.c.name == name)
    if target is not None:
        query = query.where(jobs.c.target == target)
    rows = list(conn.execute(query.order_by(jobs.c.target)).all())
    if not rows:
        what = f"{name} for {target}" if target is not None else name
        raise NotFound(f"job {what}")
    return rows


def request_run(
    conn: Connection,
    kinds: Kinds,
    *,
    business_id: str | None,
    name: str,
    target: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Make the named job(s) due now; a worker picks them up within a second or so."""
    now = now or utcnow()
    rows = _selected(conn, kinds, business_id=business_id, name=name, target=target)
    ids = [row.id for row in rows]
    conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(next_due_at=now, updated_at=now))
    return ids


def change(
    conn: Connection,
    kinds: Kinds,
    *,
    business_id: str | None,
    name: str,
    body: JobChange,
    now: datetime | None = None,
) -> list[JobView]:
    """Change the schedule, time zone or enabled flag of a job (or of every object's job
    of that kind when no target is named). Everything is checked before anything changes."""
    now = now or utcnow()
    kind = _kind(kinds, name)
    rows = _selected(conn, kinds, business_id=business_id, name=name, target=body.target)
    reset = body.schedule is not None and body.schedule.strip().lower() == "default"
    schedule_text = kind.schedule if reset else body.schedule
    for row in rows:
        timezone = row.timezone if body.timezone is None else parse_timezone(body.timezone)
        text = row.schedule if schedule_text is None else schedule_text
        schedule = parse_schedule(text, timezone=timezone)
        enabled = row.enabled if body.enabled is None else body.enabled
        values: dict[str, Any] = {
            "schedule": schedule.text,
            "timezone": timezone,
            "enabled": enabled,
            "updated_at": now,
        }
        if body.schedule is not None:
            values["custom"] = not reset
        if not enabled:
            values["next_due_at"] = None
        elif body.schedule is not None or body.timezone is not None or not row.enabled:
            values["next_due_at"] = schedule.next_after(now)
        conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values))
    ids = [row.id for row in rows]
    changed = conn.execute(select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.target)).all()
    return [_view(row, kinds, now) for row in changed]


def history(
    conn: Connection,
    *,
    business_id: str | None,
    name: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[JobRunView]:
    owner = (
        job_runs.c.business_id.is_(None)
        if business_id is None
        else job_runs.c.business_id == business_id
    )
    query = select(job_runs).where(owner)
    if name is not None:
        query = query.where(job_runs.c.name == name)
    if status is not None:
        query = query.where(job_runs.c.status == status)
    rows = conn.execute(query.order_by(job_runs.c.id.desc()).limit(limit)).all()
    return [
        JobRunView(
            id=row.id,
            job_id=row.job_id,
            name=row.name,
            target=row.target,
            attempt=row.attempt,
            due_at=row.due_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            status=row.status,
            seconds=None
            if row.finished_at is None
            else (row.finished_at - row.started_at).total_seconds(),
            counts=orjson.loads(row.counts),
            error=row.error,
            worker=row.worker,
        )
        for row in rows
    ]


def purge_history(store: Store, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Forget finished runs past the history window."""
    now = now or utcnow()
    with store.write() as conn:
        result = conn.execute(
            delete(job_runs).where(
                job_runs.c.status != "running", job_runs.c.started_at < now - older_than
            )
        )
    return max(result.rowcount, 0)


# The loop --------------------------------------------------------------------------------


@dataclass
class _Running:
    job: Claimed
    thread: threading.Thread
    result: list[tuple[JobOutcome | None, str | None]]


class Scheduler:
    """Claims due jobs and runs each on a thread of its own, `concurrency` at a time."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        kinds: Kinds,
        *,
        concurrency: int | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.kinds = kinds
        self.concurrency = concurrency or settings.scheduler_concurrency
        self.clock = clock
        self.worker = worker_name()
        self.running: list[_Running] = []
        self._last_sync: datetime | None = None
        self._last_renewal: datetime | None = None
        self.lease = timedelta(seconds=settings.scheduler_lease_seconds)
        self._wake = threading.Event()

    def _start(self, job: Claimed) -> None:
        holder: list[tuple[JobOutcome | None, str | None]] = []
        # The run sees the scheduler's time: a job deciding by the date or the hour (a
        # birthday at 09:00 local) must agree with the clock that made it due.
        now = self.clock()

        def target() -> None:
            holder.append(
                execute(self.store, self.settings, self.kinds, job, worker=self.worker, now=now)
            )
            # Wake the loop: the slot is free and the run can be recorded now.
            self._wake.set()

        thread = threading.Thread(target=target, name=f"job-{job.name}", daemon=True)
        thread.start()
        self.running.append(_Running(job, thread, holder))

    def _collect(self) -> int:
        """Record the runs that ended or outran their timeout; returns how many."""
        now = self.clock()
        still: list[_Running] = []
        ended: list[Ended] = []
        for item in self.running:
            if item.result:
                outcome, error = item.result[0]
                status: Literal["succeeded", "failed"] = "succeeded" if error is None else "failed"
                ended.append(Ended(item.job, outcome, error, status))
            elif now >= item.job.deadline:
                timeout = self.kinds[item.job.name].timeout
                ended.append(Ended(item.job, None, f"timed out after {timeout}", "timed_out"))
            else:
                still.append(item)
        self.running = still
        try:
            finish_many(self.store, self.kinds, ended, worker=self.worker, now=now)
        except Exception:
            # The leases run out and the jobs are claimed again: nothing is lost.
            log.exception("could not record the end of %d job runs", len(ended))
        return len(ended)

    def _renew(self, now: datetime) -> None:
        """The heartbeat: keep the leases of the runs still going (before their timeout)."""
        if self._last_renewal is not None and now - self._last_renewal < self.lease / 3:
            return
        self._last_renewal = now
        ids = [item.job.job_id for item in self.running if now < item.job.deadline]
        if not ids:
            return
        with self.store.write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.lease_owner == self.worker)
                .values(lease_until=now + self.lease)
            )

    def take_over(self) -> int:
        """Free every lease (on SQLite one worker owns the store, so any lease left is
        from a run of its own that stopped with it); returns how many."""
        with self.store.write() as conn:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.lease_owner.is_not(None))
                .values(lease_until=None, lease_owner=None)
            )
        return max(result.rowcount, 0)

    def tick(self) -> int:
        """One round: sync now and then, record ended runs, renew leases, start due ones."""
        now = self.clock()
        every = timedelta(seconds=self.settings.scheduler_sync_seconds)
        if self._last_sync is None or now - self._last_sync >= every:
            sync(self.store, self.kinds, settings=self.settings, now=now)
            self._last_sync = now
        self._collect()
        self._renew(now)
        claimed = claim(
            self.store,
            self.kinds,
            worker=self.worker,
            limit=self.concurrency - len(self.running),
            now=now,
            lease=self.lease,
        )
        for job in claimed:
            self._start(job)
        return len(claimed)

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; a failing round is logged and the next one goes on."""
        poll = self.settings.scheduler_poll_seconds
        if self.store.dialect == "sqlite":
            try:
                self.take_over()
            except Exception:
                log.exception("could not take over the jobs left running")
        while not stop.is_set():
            # Cleared before looking, so a run ending from here on wakes the wait below.
            self._wake.clear()
            try:
                started = self.tick()
            except Exception:
                log.exception("job scheduler round failed; going on")
                started = 0
            if started:
                continue
            if self.running:
                # Until a run ends (its thread wakes us) or the nearest timeout passes.
                nearest = min(item.job.deadline for item in self.running)
                self._wake.wait(min(poll, max(0.0, (nearest - self.clock()).total_seconds())))
                continue
            wait = poll
            try:
                due = next_due(self.store)
            except Exception:
                due = None
            if due is not None:
                wait = min(poll, max(0.0, (due - self.clock()).total_seconds()))
            stop.wait(wait)
        # Stopping: wait a little for running jobs, then leave their leases to run out.
        for item in self.running:
            item.thread.join(timeout=5)
        self._collect()

    def run_until_idle(self, *, timeout: float = 120.0) -> None:
        """Run every due job to its end, then return: a whole round at once, for tests and
        benchmarks (the worker runs `run`; `accord jobs run` claims the jobs it names)."""
        deadline = self.clock() + timedelta(seconds=timeout)
        while self.clock() < deadline:
            started = self.tick()
            if not started and not self.running:
                return
            for item in list(self.running):
                item.thread.join(timeout=0.05)
        raise TimeoutError("jobs still running after the timeout")


def start(
    settings: Settings, store: Store, kinds: Kinds, stop: threading.Event
) -> threading.Thread:
    """The scheduler on a thread of this process (`accord serve`'s worker, `accord worker`)."""
    scheduler = Scheduler(store, settings, kinds)
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="jobs", daemon=True)
    thread.start()
    return thread
