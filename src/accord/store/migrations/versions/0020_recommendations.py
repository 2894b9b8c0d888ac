"""recommendations: the product catalogue, training runs and the serving tables

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_PRODUCT = sa.String(length=255)
_WHEN = sa.DateTime(timezone=True)


def _business(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["business_id"], ["businesses.id"], name=op.f(f"fk_{table}_business_id_businesses")
    )


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("product_id", _PRODUCT, nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("image", sa.String(length=2000), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        _business("products"),
        sa.PrimaryKeyConstraint("business_id", "product_id", name=op.f("pk_products")),
    )
    op.create_table(
        "recommendation_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=True),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("evaluation", sa.Text(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _business("recommendation_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_runs")),
    )
    op.create_index(
        "ix_recommendation_runs_business_started",
        "recommendation_runs",
        ["business_id", "started_at"],
    )
    op.create_table(
        "recommendation_neighbours",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("product_id", _PRODUCT, nullable=False),
        sa.Column("related_id", _PRODUCT, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        _business("recommendation_neighbours"),
        sa.PrimaryKeyConstraint(
            "business_id", "product_id", "related_id", name=op.f("pk_recommendation_neighbours")
        ),
    )
    op.create_table(
        "recommendation_histories",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("profile_id", _ID, nullable=False),
        sa.Column("product_id", _PRODUCT, nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("bought", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=False),
        _business("recommendation_histories"),
        sa.PrimaryKeyConstraint(
            "business_id", "profile_id", "product_id", name=op.f("pk_recommendation_histories")
        ),
    )
    op.create_table(
        "recommendation_popular",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("product_id", _PRODUCT, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        _business("recommendation_popular"),
        sa.PrimaryKeyConstraint(
            "business_id", "product_id", name=op.f("pk_recommendation_popular")
        ),
    )


def downgrade() -> None:
    op.drop_table("recommendation_popular")
    op.drop_table("recommendation_histories")
    op.drop_table("recommendation_neighbours")
    op.drop_index("ix_recommendation_runs_business_started", table_name="recommendation_runs")
    op.drop_table("recommendation_runs")
    op.drop_table("products")
