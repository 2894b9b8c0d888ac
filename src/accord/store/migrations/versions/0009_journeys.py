"""journeys: versioned graphs, runs, timers, waits, steps, outbox, split winners

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 15:53:08.259054
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "journey_outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_outbox")),
    )
    with op.batch_alter_table("journey_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journey_outbox_caps",
            ["business_id", "profile_id", "channel", "created_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_journey_outbox_status"), ["status"], unique=False)

    op.create_table(
        "journey_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("journey_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("entry_key", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_reason", sa.String(length=200), nullable=True),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("holdout", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_runs")),
        sa.UniqueConstraint(
            "journey_id", "entry_key", name=op.f("uq_journey_runs_journey_id_entry_key")
        ),
    )
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.create_index("ix_journey_runs_journey", ["journey_id", "status"], unique=False)
        batch_op.create_index(
            "ix_journey_runs_profile", ["business_id", "profile_id", "status"], unique=False
        )

    op.create_table(
        "journey_split_winners",
        sa.Column("journey_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "journey_id", "version", "node", name=op.f("pk_journey_split_winners")
        ),
    )
    op.create_table(
        "journey_steps",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("journey_id", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_steps")),
    )
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.create_index("ix_journey_steps_journey_node", ["journey_id", "node"], unique=False)
        batch_op.create_index(
            "ix_journey_steps_profile", ["business_id", "profile_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_journey_steps_run_id"), ["run_id"], unique=False)

    op.create_table(
        "journey_timers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_timers")),
    )
    with op.batch_alter_table("journey_timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journey_timers_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_journey_timers_run_id"), ["run_id"], unique=False)

    op.create_table(
        "journey_versions",
        sa.Column("journey_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "version", name=op.f("pk_journey_versions")),
    )
    op.create_table(
        "journey_waits",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_journey_waits")),
    )
    with op.batch_alter_table("journey_waits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journey_waits_profile_event", ["business_id", "profile_id", "event"], unique=False
        )

    op.create_table(
        "journeys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
        sa.UniqueConstraint("business_id", "key", name=op.f("uq_journeys_business_id_key")),
    )


def downgrade() -> None:

    op.drop_table("journeys")
    with op.batch_alter_table("journey_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_waits_profile_event")

    op.drop_table("journey_waits")
    op.drop_table("journey_versions")
    with op.batch_alter_table("journey_timers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_timers_run_id"))
        batch_op.drop_index(batch_op.f("ix_journey_timers_due_at"))

    op.drop_table("journey_timers")
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_steps_run_id"))
        batch_op.drop_index("ix_journey_steps_profile")
        batch_op.drop_index("ix_journey_steps_journey_node")

    op.drop_table("journey_steps")
    op.drop_table("journey_split_winners")
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_runs_profile")
        batch_op.drop_index("ix_journey_runs_journey")

    op.drop_table("journey_runs")
    with op.batch_alter_table("journey_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_outbox_status"))
        batch_op.drop_index("ix_journey_outbox_caps")

    op.drop_table("journey_outbox")
