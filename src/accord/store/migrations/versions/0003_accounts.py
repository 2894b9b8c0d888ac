"""accounts: people, sessions, two-factor, roles, assets, grants, partners, invitations, audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:50:33.563866
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "login_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_email_at", ["email", "at"], unique=False)
        batch_op.create_index("ix_login_attempts_ip_at", ["ip", "at"], unique=False)

    op.create_table(
        "people",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("email", name=op.f("uq_people_email")),
    )
    op.create_table(
        "assets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_assets_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_business_id"), ["business_id"], unique=False)
        batch_op.create_index("ix_assets_business_id_kind", ["business_id", "kind"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("asset_kind", sa.String(length=40), nullable=True),
        sa.Column("asset_id", sa.String(length=40), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_audit_log_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_business_id"), ["business_id"], unique=False)

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("grants", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_invitations_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["people.id"], name=op.f("fk_invitations_invited_by_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invitations_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "memberships",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_memberships_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_memberships_person_id_people")
        ),
        sa.PrimaryKeyConstraint("business_id", "person_id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_person_id"), ["person_id"], unique=False)

    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_recovery_codes_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint(
            "person_id", "code_hash", name=op.f("uq_recovery_codes_person_id_code_hash")
        ),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recovery_codes_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_ui_sessions_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_ui_sessions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_ui_sessions_token_hash")),
    )
    with op.batch_alter_table("ui_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ui_sessions_person_id"), ["person_id"], unique=False)

    op.create_table(
        "ad_accounts",
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("spend_limit_minor", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_ad_accounts_asset_id_assets")
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_ad_accounts")),
    )
    with op.batch_alter_table("ad_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ad_accounts_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "asset_grants",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("tasks", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_asset_grants_asset_id_assets")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_asset_grants_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_asset_grants_person_id_people")
        ),
        sa.PrimaryKeyConstraint(
            "business_id", "person_id", "asset_id", name=op.f("pk_asset_grants")
        ),
    )
    with op.batch_alter_table("asset_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_grants_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "partner_shares",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("partner_business_id", sa.String(length=40), nullable=False),
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("tasks", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_partner_shares_asset_id_assets")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_partner_shares_business_id_businesses"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_business_id"],
            ["businesses.id"],
            name=op.f("fk_partner_shares_partner_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_shares")),
    )
    with op.batch_alter_table("partner_shares", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partner_shares_business_id"), ["business_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_shares_partner_business_id"),
            ["partner_business_id"],
            unique=False,
        )

    op.create_table(
        "properties",
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=10), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_properties_asset_id_assets")
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_properties")),
    )
    with op.batch_alter_table("properties", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_properties_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "social_accounts",
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("page_reference", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_social_accounts_asset_id_assets")
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_social_accounts")),
    )
    with op.batch_alter_table("social_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_social_accounts_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("ad_account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("objective", sa.String(length=20), nullable=False),
        sa.Column("pricing", sa.String(length=5), nullable=False),
        sa.Column("budget_minor", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ad_account_id"],
            ["ad_accounts.asset_id"],
            name=op.f("fk_campaigns_ad_account_id_ad_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_ad_account_id"), ["ad_account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaigns_business_id"), ["business_id"], unique=False)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("role", sa.String(length=20), server_default="admin", nullable=False)
        )
        batch_op.add_column(sa.Column("permissions", sa.Text(), server_default="", nullable=False))
        batch_op.create_index(batch_op.f("ix_api_tokens_person_id"), ["person_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_person_id_people"), "people", ["person_id"], ["id"]
        )

    with op.batch_alter_table("businesses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("website", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column("kind", sa.String(length=20), server_default="advertiser", nullable=False)
        )
        batch_op.add_column(
            sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "two_factor_policy", sa.String(length=20), server_default="none", nullable=False
            )
        )

    # Pixels already made (tracking sources) become assets, so permissions cover them.
    op.execute(
        "INSERT INTO assets (id, business_id, kind, name, created_at) "
        "SELECT id, business_id, 'pixel', name, created_at FROM sources"
    )


def downgrade() -> None:

    with op.batch_alter_table("businesses", schema=None) as batch_op:
        batch_op.drop_column("two_factor_policy")
        batch_op.drop_column("email_verified_at")
        batch_op.drop_column("kind")
        batch_op.drop_column("website")
        batch_op.drop_column("phone")
        batch_op.drop_column("address")
        batch_op.drop_column("contact_email")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_tokens_person_id_people"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_tokens_person_id"))
        batch_op.drop_column("permissions")
        batch_op.drop_column("role")
        batch_op.drop_column("person_id")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_business_id"))
        batch_op.drop_index(batch_op.f("ix_campaigns_ad_account_id"))

    op.drop_table("campaigns")
    with op.batch_alter_table("social_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_social_accounts_business_id"))

    op.drop_table("social_accounts")
    with op.batch_alter_table("properties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_properties_business_id"))

    op.drop_table("properties")
    with op.batch_alter_table("partner_shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_shares_partner_business_id"))
        batch_op.drop_index(batch_op.f("ix_partner_shares_business_id"))

    op.drop_table("partner_shares")
    with op.batch_alter_table("asset_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_grants_asset_id"))

    op.drop_table("asset_grants")
    with op.batch_alter_table("ad_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ad_accounts_business_id"))

    op.drop_table("ad_accounts")
    with op.batch_alter_table("ui_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ui_sessions_person_id"))

    op.drop_table("ui_sessions")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_person_id"))

    op.drop_table("recovery_codes")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_person_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitations_business_id"))

    op.drop_table("invitations")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_business_id"))

    op.drop_table("audit_log")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_business_id_kind")
        batch_op.drop_index(batch_op.f("ix_assets_business_id"))

    op.drop_table("assets")
    op.drop_table("people")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_ip_at")
        batch_op.drop_index("ix_login_attempts_email_at")

    op.drop_table("login_attempts")
