"""mapped imports: saved column mappings, uploads between preview and import, import
reports; consent records imported from files say so (`imported`, `import_key`)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_mappings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_mappings")),
        sa.UniqueConstraint(
            "business_id", "name", name=op.f("uq_import_mappings_business_id_name")
        ),
    )
    op.create_table(
        "import_uploads",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_uploads")),
    )
    op.create_index(
        "ix_import_uploads_business_id", "import_uploads", ["business_id", "created_at"]
    )
    op.create_table(
        "event_imports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("mapping", sa.String(length=100), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("events_read", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("dropped_by_consent", sa.Integer(), nullable=False),
        sa.Column("consents_recorded", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Text(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_imports")),
    )
    op.create_index("ix_event_imports_business_id", "event_imports", ["business_id", "created_at"])
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imported", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("import_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            op.f("uq_consent_records_business_id_import_key"), ["business_id", "import_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_consent_records_business_id_import_key"), type_="unique")
        batch_op.drop_column("import_key")
        batch_op.drop_column("imported")
    op.drop_table("event_imports")
    op.drop_table("import_uploads")
    op.drop_table("import_mappings")
