"""rfm_boundaries: the RFM quintile boundaries of each business

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 06:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rfm_boundaries",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("recency", sa.Text(), nullable=False),
        sa.Column("frequency", sa.Text(), nullable=False),
        sa.Column("monetary", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_rfm_boundaries")),
    )


def downgrade() -> None:
    op.drop_table("rfm_boundaries")
