"""experiments: designs with their frozen analysis plan

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("namespace_start", sa.Integer(), nullable=False),
        sa.Column("namespace_end", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("design", sa.Text(), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_experiments_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("business_id", "key", name=op.f("uq_experiments_business_id_key")),
    )
    op.create_index(
        op.f("ix_experiments_business_id"), "experiments", ["business_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_experiments_business_id"), table_name="experiments")
    op.drop_table("experiments")
