"""audiences: definitions, members, entries and exits, sizes, suppressions, webhooks

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_WHEN = sa.DateTime(timezone=True)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("predefined", sa.Boolean(), nullable=False),
        sa.Column("suppression", sa.Boolean(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("refreshed_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("business_id", "slug", name=op.f("uq_audiences_business_id_slug")),
    )
    op.create_table(
        "audience_members",
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("profile_id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("entered_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_members_audience_id_audiences"),
        ),
        sa.PrimaryKeyConstraint("audience_id", "profile_id", name=op.f("pk_audience_members")),
    )
    op.create_index(
        "ix_audience_members_business_profile",
        "audience_members",
        ["business_id", "profile_id"],
        unique=False,
    )
    op.create_table(
        "audience_changes",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("profile_id", _ID, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_changes_audience_id_audiences"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audience_changes")),
    )
    op.create_index(
        "ix_audience_changes_audience_seq", "audience_changes", ["audience_id", "seq"], unique=False
    )
    op.create_table(
        "audience_sizes",
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_audience_sizes_audience_id_audiences")
        ),
        sa.PrimaryKeyConstraint("audience_id", "at", name=op.f("pk_audience_sizes")),
    )
    op.create_table(
        "suppressions",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("business_id", "kind", "value", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "audience_webhooks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("audience_id", _ID, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("delivered_seq", _SEQ, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_webhooks_audience_id_audiences"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_webhooks")),
    )
    op.create_index(
        "ix_audience_webhooks_audience", "audience_webhooks", ["audience_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_audience_webhooks_audience", table_name="audience_webhooks")
    op.drop_table("audience_webhooks")
    op.drop_table("suppressions")
    op.drop_table("audience_sizes")
    op.drop_index("ix_audience_changes_audience_seq", table_name="audience_changes")
    op.drop_table("audience_changes")
    op.drop_index("ix_audience_members_business_profile", table_name="audience_members")
    op.drop_table("audience_members")
    op.drop_table("audiences")
