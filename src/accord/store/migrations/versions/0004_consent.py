"""consent: properties, purposes, vendors, notices, geo rules, policies, the ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:52:17.289818
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_chain_heads",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_chain_heads_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_consent_chain_heads")),
    )
    op.create_table(
        "consent_geo_rules",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.Column("regime", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_geo_rules_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("business_id", "region", name=op.f("pk_consent_geo_rules")),
    )
    op.create_table(
        "consent_policies",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("event_purposes", sa.Text(), nullable=False),
        sa.Column("default_purpose", sa.String(length=40), nullable=False),
        sa.Column("anonymous_counting", sa.Boolean(), nullable=False),
        sa.Column("honour_gpc", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_policies_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_consent_policies")),
    )
    op.create_table(
        "consent_properties",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("cmp_id", sa.Integer(), nullable=True),
        sa.Column("publisher_cc", sa.String(length=2), nullable=True),
        sa.Column("gvl_version", sa.Integer(), nullable=True),
        sa.Column("cookie_name", sa.String(length=64), nullable=False),
        sa.Column("cookie_max_age_days", sa.Integer(), nullable=False),
        sa.Column("cookie_domain", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_properties_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_properties")),
        sa.UniqueConstraint(
            "business_id", "key", name=op.f("uq_consent_properties_business_id_key")
        ),
    )
    op.create_table(
        "consent_purposes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("texts", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(length=24), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("tcf_purposes", sa.Text(), nullable=False),
        sa.Column("consent_mode", sa.Text(), nullable=False),
        sa.Column("cookies", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_purposes_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_purposes")),
        sa.UniqueConstraint("business_id", "key", name=op.f("uq_consent_purposes_business_id_key")),
    )
    op.create_table(
        "consent_records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.String(length=40), nullable=False),
        sa.Column("anonymous_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("notice_id", sa.String(length=40), nullable=True),
        sa.Column("notice_version", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=16), nullable=True),
        sa.Column("text_hash", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("regime", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("vendors", sa.Text(), nullable=False),
        sa.Column("special_features", sa.Text(), nullable=False),
        sa.Column("legitimate_interest", sa.Text(), nullable=False),
        sa.Column("gpc", sa.Boolean(), nullable=False),
        sa.Column("sale_opt_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("tc_string", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_records_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_consent_records")),
        sa.UniqueConstraint(
            "business_id", "position", name=op.f("uq_consent_records_business_id_position")
        ),
        sa.UniqueConstraint("id", name=op.f("uq_consent_records_id")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_records_anonymous", ["business_id", "anonymous_id"], unique=False
        )
        batch_op.create_index("ix_consent_records_user", ["business_id", "user_id"], unique=False)

    op.create_table(
        "consent_vendors",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("tcf_id", sa.Integer(), nullable=True),
        sa.Column("policy_url", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_vendors_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_vendors")),
        sa.UniqueConstraint("business_id", "key", name=op.f("uq_consent_vendors_business_id_key")),
    )
    op.create_table(
        "consent_notices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("property_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("default_language", sa.String(length=16), nullable=False),
        sa.Column("texts", sa.Text(), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("layout", sa.String(length=8), nullable=False),
        sa.Column("colours", sa.Text(), nullable=False),
        sa.Column("logo_url", sa.String(length=1000), nullable=True),
        sa.Column("text_hashes", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_notices_business_id_businesses"),
        ),
        sa.ForeignKeyConstraint(
            ["property_id"],
            ["consent_properties.id"],
            name=op.f("fk_consent_notices_property_id_consent_properties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_notices")),
        sa.UniqueConstraint(
            "property_id",
            "version",
            "variant",
            name=op.f("uq_consent_notices_property_id_version_variant"),
        ),
    )


def downgrade() -> None:
    op.drop_table("consent_notices")
    op.drop_table("consent_vendors")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_user")
        batch_op.drop_index("ix_consent_records_anonymous")

    op.drop_table("consent_records")
    op.drop_table("consent_purposes")
    op.drop_table("consent_properties")
    op.drop_table("consent_policies")
    op.drop_table("consent_geo_rules")
    op.drop_table("consent_chain_heads")
