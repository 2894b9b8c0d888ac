"""inbox: index on batch_id, so claims are read without scanning the inbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbox_batch_id", "inbox", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbox_batch_id", table_name="inbox")
