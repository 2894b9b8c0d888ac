"""Jobs as the API, the page and the CLI show and change them: the list, a run now, a
schedule or a pause, the history and its purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, update

from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.process.kinds import REQUESTED_AT, JobKind, Kinds
from accord.process.models import JobChange, JobRunView, JobView, job_runs, jobs
from accord.process.schedule import parse_schedule, parse_timezone
from accord.store.db import Store


def _view(row: Any, kinds: Kinds, now: datetime, label: str | None = None) -> JobView:
    """The job's row as shown, with what its kind says (the row's other columns drop out)."""
    kind = kinds[row.name]
    return JobView.model_validate(
        {
            **row._mapping,
            "title": kind.title,
            "target_label": label,
            "scope": kind.scope,
            "default_schedule": kind.schedule,
            "running": row.lease_until is not None and row.lease_until >= now,
        }
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
    """Make the named job(s) due now; a worker picks them up within a second or so.

    The job's kept state records the request (`requested_at`), so a kind that must only
    run when someone asks can tell an asked run from a scheduled one."""
    now = now or utcnow()
    rows = _selected(conn, kinds, business_id=business_id, name=name, target=target)
    for row in rows:
        state = {**orjson.loads(row.state), REQUESTED_AT: now.isoformat()}
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(next_due_at=now, updated_at=now, state=orjson.dumps(state).decode())
        )
    return [row.id for row in rows]


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
    statuses: Sequence[str] = (),
    since: datetime | None = None,
    limit: int = 100,
) -> list[JobRunView]:
    """Runs, newest first: of one job (`name`), with one `status` or any of `statuses`,
    started since `since`."""
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
    if statuses:
        query = query.where(job_runs.c.status.in_(statuses))
    if since is not None:
        query = query.where(job_runs.c.started_at >= since)
    rows = conn.execute(query.order_by(job_runs.c.id.desc()).limit(limit)).all()
    return [
        JobRunView.model_validate(
            {
                **row._mapping,
                "seconds": None
                if row.finished_at is None
                else (row.finished_at - row.started_at).total_seconds(),
                "counts": orjson.loads(row.counts),
            }
        )
        for row in rows
    ]


# Run statuses that mean the work was not done.
FAILED_STATUSES = ("failed", "timed_out", "lost")


def outcomes(conn: Connection, *, business_id: str, since: datetime) -> dict[str, dict[str, int]]:
    """Job name → run status → how many runs of the business's jobs started since `since`."""
    rows = conn.execute(
        select(job_runs.c.name, job_runs.c.status, func.count().label("runs"))
        .where(job_runs.c.business_id == business_id, job_runs.c.started_at >= since)
        .group_by(job_runs.c.name, job_runs.c.status)
        .order_by(job_runs.c.name, job_runs.c.status)
    ).all()
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row.name, {})[row.status] = int(row.runs)
    return found


def failed_runs(
    conn: Connection, *, business_id: str, since: datetime, limit: int = 5
) -> list[JobRunView]:
    """The newest runs since `since` that failed, timed out or were lost."""
    return history(
        conn, business_id=business_id, statuses=FAILED_STATUSES, since=since, limit=limit
    )


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
