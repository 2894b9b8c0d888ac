"""identity graph: rules, edges, merge history, review queue; profile events and computed traits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:53:42.026450
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_tombstones",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("erasure_id", sa.String(length=40), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "business_id", "kind", "value_hash", name=op.f("pk_identity_tombstones")
        ),
    )
    op.create_table(
        "identity_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("a_kind", sa.String(length=32), nullable=False),
        sa.Column("a_value", sa.String(length=255), nullable=False),
        sa.Column("b_kind", sa.String(length=32), nullable=False),
        sa.Column("b_value", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("inbox_seq", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_edges")),
        sa.UniqueConstraint(
            "business_id",
            "a_kind",
            "a_value",
            "b_kind",
            "b_value",
            name=op.f("uq_identity_edges_business_id_a_kind_a_value_b_kind_b_value"),
        ),
    )
    with op.batch_alter_table("identity_edges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identity_edges_b", ["business_id", "b_kind", "b_value"], unique=False
        )

    op.create_table(
        "identity_merges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("other_profile_id", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_merges")),
    )
    with op.batch_alter_table("identity_merges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identity_merges_other", ["business_id", "other_profile_id"], unique=False
        )
        batch_op.create_index(
            "ix_identity_merges_profile", ["business_id", "profile_id"], unique=False
        )

    op.create_table(
        "identity_reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("profile_ids", sa.Text(), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("inbox_seq", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_reviews")),
    )
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_identity_reviews_status", ["business_id", "status"], unique=False)

    op.create_table(
        "identity_rules",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_identity_rules")),
    )
    op.create_table(
        "profile_events",
        sa.Column("inbox_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("inbox_seq", name=op.f("pk_profile_events")),
    )
    with op.batch_alter_table("profile_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_profile_events_profile", ["profile_id", "occurred_at"], unique=False
        )

    op.create_table(
        "profile_computed",
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("spend_cents", sa.BigInteger(), nullable=False),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_cart_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cart_abandoned", sa.Boolean(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_profile_computed_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_profile_computed")),
    )
    with op.batch_alter_table("profile_computed", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profile_computed_business_id"), ["business_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("identity_tombstones")
    with op.batch_alter_table("profile_computed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_computed_business_id"))

    op.drop_table("profile_computed")
    with op.batch_alter_table("profile_events", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_events_profile")

    op.drop_table("profile_events")
    op.drop_table("identity_rules")
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_reviews_status")

    op.drop_table("identity_reviews")
    with op.batch_alter_table("identity_merges", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_merges_profile")
        batch_op.drop_index("ix_identity_merges_other")

    op.drop_table("identity_merges")
    with op.batch_alter_table("identity_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_edges_b")

    op.drop_table("identity_edges")
