"""webhook_dead_letters: failing webhook destinations, and the batches they did not accept

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("audience_webhooks", schema=None) as batch_op:
        # Existing destinations start with no failures recorded.
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_attempt_at", _WHEN, nullable=True))
    op.create_table(
        "audience_webhook_dead_letters",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("resolved_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_webhook_dead_letters_audience_id_audiences"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["audience_webhooks.id"],
            name=op.f("fk_audience_webhook_dead_letters_webhook_id_audience_webhooks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_webhook_dead_letters")),
    )
    op.create_index(
        "ix_audience_webhook_dead_letters_webhook_status",
        "audience_webhook_dead_letters",
        ["webhook_id", "status"],
    )
    op.create_index(
        "ix_audience_webhook_dead_letters_business_status",
        "audience_webhook_dead_letters",
        ["business_id", "status"],
    )


def downgrade() -> None:
    op.drop_table("audience_webhook_dead_letters")
    with op.batch_alter_table("audience_webhooks", schema=None) as batch_op:
        batch_op.drop_column("last_attempt_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("failures")
