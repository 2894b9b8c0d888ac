"""spend_and_saved_reports: one spend model (replaces lead_spend) and the dashboard's saved reports

The leads funnel's per-campaign costs (lead_spend) and the lead imports' spend move into
spend_entries, dated on the day they were written.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    spend = op.create_table(
        "spend_entries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("origin_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_spend_entries_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_entries")),
    )
    op.create_index("ix_spend_entries_business_day", "spend_entries", ["business_id", "day"])
    op.create_table(
        "saved_reports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("refreshed_at", _WHEN, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_saved_reports_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_reports")),
    )
    op.create_index("ix_saved_reports_business", "saved_reports", ["business_id"])
    _move_lead_spend(spend)
    op.drop_table("lead_spend")


def _move_lead_spend(spend: sa.Table) -> None:
    conn = op.get_bind()
    old = sa.table(
        "lead_spend",
        sa.column("business_id", sa.String()),
        sa.column("campaign", sa.String()),
        sa.column("amount", sa.Float()),
        sa.column("updated_at", _WHEN),
    )
    imports = sa.table(
        "lead_imports",
        sa.column("id", sa.String()),
        sa.column("business_id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("name", sa.String()),
        sa.column("spend", sa.Float()),
        sa.column("created_at", _WHEN),
    )
    rows = [
        {
            "id": f"spd_m{n}",
            "business_id": r.business_id,
            "day": r.updated_at.date(),
            "channel": "other",
            "campaign": r.campaign,
            "amount": r.amount,
            "origin": "leads",
            "origin_id": None,
            "created_at": r.updated_at,
        }
        for n, r in enumerate(conn.execute(sa.select(old)).all())
    ]
    rows += [
        {
            "id": f"spd_i{n}",
            "business_id": r.business_id,
            "day": r.created_at.date(),
            "channel": "paid social" if r.kind == "lead_ads" else "other",
            "campaign": r.name,
            "amount": r.spend,
            "origin": r.kind,
            "origin_id": r.id,
            "created_at": r.created_at,
        }
        for n, r in enumerate(
            conn.execute(sa.select(imports).where(imports.c.spend.is_not(None))).all()
        )
    ]
    if rows:
        op.bulk_insert(spend, rows)


def downgrade() -> None:
    op.create_table(
        "lead_spend",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_lead_spend_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("business_id", "campaign", name=op.f("pk_lead_spend")),
    )
    op.drop_index("ix_saved_reports_business", table_name="saved_reports")
    op.drop_table("saved_reports")
    op.drop_index("ix_spend_entries_business_day", table_name="spend_entries")
    op.drop_table("spend_entries")
