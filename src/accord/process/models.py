"""Tables and views of the job scheduler: one row per job, and the history of its runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

# A job: one kind of work for one business (or for the whole installation when
# business_id is NULL), on one object when the kind works per object (an audience).
jobs = Table(
    "jobs",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=True, index=True),
    Column("name", String(64), nullable=False),
    Column("target", id_column_type(), nullable=True),
    # business:name:target, so that a job exists once (NULLs do not collide in a unique index).
    Column("key", String(200), nullable=False, unique=True),
    Column("schedule", String(100), nullable=False),
    Column("timezone", String(64), nullable=False),
    # True once a person changed the schedule: the default no longer applies to it.
    Column("custom", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("next_due_at", instant(), nullable=True, index=True),
    # A worker holds the job until this time; past it another worker may take it over.
    Column("lease_until", instant(), nullable=True),
    Column("lease_owner", String(80), nullable=True),
    # Failed attempts of the current occurrence (retries back off from it).
    Column("attempt", Integer, nullable=False),
    # JSON object a kind keeps between its runs (e.g. when it last trained).
    Column("state", Text(), nullable=False),
    Column("last_status", String(16), nullable=True),
    Column("last_started_at", instant(), nullable=True),
    Column("last_finished_at", instant(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("job_id", id_column_type(), nullable=False),
    Column("business_id", id_column_type(), nullable=True),
    Column("name", String(64), nullable=False),
    Column("target", id_column_type(), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("due_at", instant(), nullable=True),
    Column("started_at", instant(), nullable=False),
    Column("finished_at", instant(), nullable=True),
    # running, succeeded, failed, timed_out
    Column("status", String(16), nullable=False),
    # JSON object of what the run did (audiences refreshed, messages sent...).
    Column("counts", Text(), nullable=False),
    Column("error", Text(), nullable=True),
    Column("worker", String(80), nullable=False),
    Index("ix_job_runs_business_id_started_at", "business_id", "started_at"),
    Index("ix_job_runs_job_id_started_at", "job_id", "started_at"),
)


class JobView(BaseModel):
    id: str
    name: str
    title: str
    target: str | None
    # The object's name (an audience's), where the kind has one.
    target_label: str | None = None
    scope: str
    schedule: str
    default_schedule: str
    timezone: str
    enabled: bool
    next_due_at: datetime | None
    running: bool
    attempt: int
    last_status: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_error: str | None


class JobRunView(BaseModel):
    id: int
    job_id: str
    name: str
    target: str | None
    attempt: int
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    seconds: float | None
    counts: dict[str, Any]
    error: str | None
    worker: str


class JobChange(BaseModel):
    """A change to a job's schedule; fields left out stay as they are."""

    target: str | None = Field(
        default=None, max_length=40, description="Object of a per-object job"
    )
    schedule: str | None = Field(
        default=None,
        max_length=100,
        description="`every 15m` or five cron fields; `default` resets",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="Time zone of cron fields"
    )
    enabled: bool | None = None


class RunRequest(BaseModel):
    target: str | None = Field(
        default=None, max_length=40, description="Object of a per-object job"
    )
