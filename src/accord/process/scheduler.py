"""The job scheduler: its loop, and the job rows kept in line with businesses and objects.

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
scheduler. Claims and records are in `claims.py`, what a kind is in `kinds.py`, what
people see and change in `job_admin.py`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from accord.accounts.models import businesses
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.process.claims import (
    Claimed,
    Ended,
    claim,
    execute,
    finish_many,
    next_due,
    worker_name,
)
from accord.process.kinds import JobContext, JobKind, JobOutcome, Kinds
from accord.process.models import jobs
from accord.process.schedule import parse_schedule
from accord.store.db import Store

log = logging.getLogger(__name__)


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
