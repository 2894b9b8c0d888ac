"""consent_scans: cookie scans of a property's site run by the scheduler, and their findings

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_scans",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("property_id", _ID, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("max_pages", sa.Integer(), nullable=False),
        sa.Column("fetch_third_party", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("requested_at", _WHEN, nullable=False),
        sa.Column("started_at", _WHEN, nullable=True),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("pages", sa.Text(), nullable=False),
        sa.Column("consent_action", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_consent_scans_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["property_id"],
            ["consent_properties.id"],
            name=op.f("fk_consent_scans_property_id_consent_properties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_scans")),
    )
    op.create_index("ix_consent_scans_property_status", "consent_scans", ["property_id", "status"])
    op.create_index(
        "ix_consent_scans_business_requested", "consent_scans", ["business_id", "requested_at"]
    )
    op.create_table(
        "consent_scan_findings",
        sa.Column("id", _SEQ, autoincrement=True, nullable=False),
        sa.Column("scan_id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("page", sa.String(length=2000), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("third_party", sa.Boolean(), nullable=False),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("purpose", sa.String(length=40), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("example", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["consent_scans.id"],
            name=op.f("fk_consent_scan_findings_scan_id_consent_scans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_scan_findings")),
    )
    op.create_index("ix_consent_scan_findings_scan", "consent_scan_findings", ["scan_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_scan_findings_scan", table_name="consent_scan_findings")
    op.drop_table("consent_scan_findings")
    op.drop_index("ix_consent_scans_business_requested", table_name="consent_scans")
    op.drop_index("ix_consent_scans_property_status", table_name="consent_scans")
    op.drop_table("consent_scans")
