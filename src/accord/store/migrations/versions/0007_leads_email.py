"""leads and email: forms, leads, consents, coupons, scoring, imports, templates, campaigns

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:01:30.549538
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_pools",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_coupon_pools_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_pools")),
    )
    with op.batch_alter_table("coupon_pools", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupon_pools_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "email_lists",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_email_lists_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_lists")),
    )
    with op.batch_alter_table("email_lists", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_lists_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "email_suppressions",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_email_suppressions_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("business_id", "email", name=op.f("pk_email_suppressions")),
    )
    op.create_table(
        "email_templates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_email_templates_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
    )
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_templates_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "lead_forms",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_lead_forms_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_forms")),
        sa.UniqueConstraint("slug", name=op.f("uq_lead_forms_slug")),
    )
    with op.batch_alter_table("lead_forms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_forms_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "lead_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("spend", sa.Float(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("leads_added", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_lead_imports_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_imports")),
    )
    with op.batch_alter_table("lead_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_imports_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "lead_scoring",
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("half_life_days", sa.Float(), nullable=False),
        sa.Column("consideration_at", sa.Float(), nullable=False),
        sa.Column("prospect_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_lead_scoring_business_id_businesses")
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_lead_scoring")),
    )
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
    op.create_table(
        "email_campaigns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("list_id", sa.String(length=40), nullable=True),
        sa.Column("audience_id", sa.String(length=100), nullable=True),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ab_test", sa.Text(), nullable=True),
        sa.Column("winner", sa.String(length=1), nullable=True),
        sa.Column("spend", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_email_campaigns_business_id_businesses"),
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["email_lists.id"], name=op.f("fk_email_campaigns_list_id_email_lists")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["email_templates.id"],
            name=op.f("fk_email_campaigns_template_id_email_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_campaigns")),
    )
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_campaigns_business_id"), ["business_id"], unique=False
        )
        batch_op.create_index(
            "ix_email_campaigns_status_due_at", ["status", "due_at"], unique=False
        )

    op.create_table(
        "email_list_members",
        sa.Column("list_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("traits", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["email_lists.id"], name=op.f("fk_email_list_members_list_id_email_lists")
        ),
        sa.PrimaryKeyConstraint("list_id", "email", name=op.f("pk_email_list_members")),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("anonymous_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("utm", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("form_id", sa.String(length=40), nullable=True),
        sa.Column("form_version", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_ip", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=20), server_default="lead", nullable=False),
        sa.Column("phase", sa.String(length=20), server_default="awareness", nullable=False),
        sa.Column("score", sa.Float(), server_default="0", nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"], ["businesses.id"], name=op.f("fk_leads_business_id_businesses")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["lead_forms.id"], name=op.f("fk_leads_form_id_lead_forms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("business_id", "email", name=op.f("uq_leads_business_id_email")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_business_id"), ["business_id"], unique=False)
        batch_op.create_index(
            "ix_leads_business_id_anonymous_id", ["business_id", "anonymous_id"], unique=False
        )

    op.create_table(
        "coupons",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("pool_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("lead_id", sa.String(length=40), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_coupons_lead_id_leads")),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["coupon_pools.id"], name=op.f("fk_coupons_pool_id_coupon_pools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("pool_id", "code", name=op.f("uq_coupons_pool_id_code")),
        sa.UniqueConstraint("pool_id", "lead_id", name=op.f("uq_coupons_pool_id_lead_id")),
    )
    op.create_table(
        "email_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("variant", sa.String(length=1), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("links", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_campaigns.id"],
            name=op.f("fk_email_messages_campaign_id_email_campaigns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint(
            "campaign_id", "email", name=op.f("uq_email_messages_campaign_id_email")
        ),
    )
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_messages_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "lead_consents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("form_id", sa.String(length=40), nullable=True),
        sa.Column("form_version", sa.Integer(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmation_message_id", sa.String(length=40), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_ip", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_consents_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_consents")),
    )
    with op.batch_alter_table("lead_consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_consents_business_id"), ["business_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_lead_consents_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "lead_stage_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_stage_changes_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_stage_changes")),
    )
    with op.batch_alter_table("lead_stage_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_stage_changes_business_id"), ["business_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_lead_stage_changes_lead_id"), ["lead_id"], unique=False
        )

    op.create_table(
        "email_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("business_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_email_events_message_id_email_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_events")),
    )
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_events_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            "ix_email_events_message_id_kind", ["message_id", "kind"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.drop_index("ix_email_events_message_id_kind")
        batch_op.drop_index(batch_op.f("ix_email_events_campaign_id"))

    op.drop_table("email_events")
    with op.batch_alter_table("lead_stage_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_stage_changes_lead_id"))
        batch_op.drop_index(batch_op.f("ix_lead_stage_changes_business_id"))

    op.drop_table("lead_stage_changes")
    with op.batch_alter_table("lead_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_consents_lead_id"))
        batch_op.drop_index(batch_op.f("ix_lead_consents_business_id"))

    op.drop_table("lead_consents")
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_messages_business_id"))

    op.drop_table("email_messages")
    op.drop_table("coupons")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_business_id_anonymous_id")
        batch_op.drop_index(batch_op.f("ix_leads_business_id"))

    op.drop_table("leads")
    op.drop_table("email_list_members")
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_email_campaigns_status_due_at")
        batch_op.drop_index(batch_op.f("ix_email_campaigns_business_id"))

    op.drop_table("email_campaigns")
    op.drop_table("lead_spend")
    op.drop_table("lead_scoring")
    with op.batch_alter_table("lead_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_imports_business_id"))

    op.drop_table("lead_imports")
    with op.batch_alter_table("lead_forms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_forms_business_id"))

    op.drop_table("lead_forms")
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_templates_business_id"))

    op.drop_table("email_templates")
    op.drop_table("email_suppressions")
    with op.batch_alter_table("email_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_lists_business_id"))

    op.drop_table("email_lists")
    with op.batch_alter_table("coupon_pools", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_pools_business_id"))

    op.drop_table("coupon_pools")
