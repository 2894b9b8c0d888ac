"""Tables of journeys: versioned graphs, people inside them, their timers, waits and steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

journeys = Table(
    "journeys",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    # draft, active, paused, archived
    Column("status", String(16), nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
    UniqueConstraint("business_id", "key"),
)

# A version never changes once written: people inside keep the version they entered.
journey_versions = Table(
    "journey_versions",
    metadata,
    Column("journey_id", id_column_type(), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
)

# One person's pass through one journey.
journey_runs = Table(
    "journey_runs",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("journey_id", id_column_type(), nullable=False),
    Column("version", Integer, nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    # What made this entry unique (a cart id, an event id); re-entries get a new key.
    Column("entry_key", String(255), nullable=False),
    Column("node", String(64), nullable=True),
    # active, converted, exited, failed
    Column("status", String(16), nullable=False),
    Column("exit_reason", String(200), nullable=True),
    Column("context", Text, nullable=False),
    # In the share that gets no smart timing or channel choice, for comparison.
    Column("holdout", Boolean, nullable=False, server_default=false()),
    Column("entered_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
    Column("finished_at", instant(), nullable=True),
    UniqueConstraint("journey_id", "entry_key"),
    Index("ix_journey_runs_profile", "business_id", "profile_id", "status"),
    Index("ix_journey_runs_journey", "journey_id", "status"),
)

# A run waiting for time to pass. A timer row exists only until its step has run:
# firing deletes it in the same transaction that records the step.
journey_timers = Table(
    "journey_timers",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("run_id", id_column_type(), nullable=False, index=True),
    Column("node", String(64), nullable=False),
    # wake (a wait ends), timeout (a wait for an event gives up), retry (a delayed send)
    Column("kind", String(16), nullable=False),
    Column("due_at", instant(), nullable=False, index=True),
)

# A run waiting for one of the person's events.
journey_waits = Table(
    "journey_waits",
    metadata,
    Column("run_id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("event", String(200), nullable=False),
    Column("node", String(64), nullable=False),
    Index("ix_journey_waits_profile_event", "business_id", "profile_id", "event"),
)

# Every step a person takes, in order: their path is readable on their profile.
journey_steps = Table(
    "journey_steps",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("run_id", id_column_type(), nullable=False, index=True),
    Column("journey_id", id_column_type(), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("node", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    # The path a split sent the person down, so A/B results are one grouped count.
    Column("path", String(64), nullable=True),
    Column("detail", Text, nullable=False),
    Column("at", instant(), nullable=False),
    Index("ix_journey_steps_journey_node", "journey_id", "node"),
    Index("ix_journey_steps_profile", "business_id", "profile_id"),
)

# Messages a step decided to send, written in the step's transaction and delivered
# after it commits; the id is the provider's idempotency key.
journey_outbox = Table(
    "journey_outbox",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("run_id", id_column_type(), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("message", String(200), nullable=False),
    Column("node", String(64), nullable=False),
    # queued, claimed, sending, sent, failed, unknown (in flight when a worker stopped)
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("claimed_at", instant(), nullable=True),
    Column("detail", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("sent_at", instant(), nullable=True),
    Index("ix_journey_outbox_caps", "business_id", "profile_id", "channel", "created_at"),
)


# The path an A/B split settled on; from then on everyone takes it.
journey_split_winners = Table(
    "journey_split_winners",
    metadata,
    Column("journey_id", id_column_type(), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("node", String(64), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("winner", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("decided_at", instant(), nullable=False),
)


class JourneyView(BaseModel):
    id: str
    key: str
    name: str
    status: str
    current_version: int
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class StepView(BaseModel):
    run_id: str
    journey_id: str
    node: str
    outcome: str
    detail: dict[str, Any]
    at: datetime


class RunView(BaseModel):
    id: str
    journey_id: str
    version: int
    profile_id: str
    node: str | None
    status: str
    exit_reason: str | None
    entered_at: datetime
    finished_at: datetime | None
    steps: list[StepView]
