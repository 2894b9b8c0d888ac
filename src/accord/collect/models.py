"""The inbox (accepted events, durable before acknowledgement, processed in order) and the
tables of mapped file imports: saved mappings, uploads waiting for their import, reports."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

inbox = Table(
    "inbox",
    metadata,
    Column("seq", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("source_id", id_column_type(), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("received_at", instant(), nullable=False),
    Column("payload", Text, nullable=False),
    # Set when a worker claims the row; a claim older than the lease is taken over
    # with the same batch id, so the lake file it writes is the same file.
    Column("batch_id", String(40), nullable=True),
    Column("claimed_at", instant(), nullable=True),
    Column("processed_at", instant(), nullable=True),
    Column("profile_id", id_column_type(), nullable=True),
    UniqueConstraint("source_id", "message_id"),
    Index(
        "ix_inbox_pending",
        "seq",
        postgresql_where=text("processed_at IS NULL"),
        sqlite_where=text("processed_at IS NULL"),
    ),
    Index("ix_inbox_profile", "profile_id", "seq"),
    # A worker reads and marks its claim by batch id.
    Index("ix_inbox_batch_id", "batch_id"),
    Index("ix_inbox_processed_at", "processed_at"),
)

# A column mapping a business saved by name, reusable from the Imports page and the CLI.
import_mappings = Table(
    "import_mappings",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("name", String(100), nullable=False),
    Column("spec", Text, nullable=False),  # the mapping as JSON
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
    UniqueConstraint("business_id", "name"),
)

# A file uploaded on the Imports page, kept between its preview and its import.
import_uploads = Table(
    "import_uploads",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", instant(), nullable=False),
    Index("ix_import_uploads_business_id", "business_id", "created_at"),
)

# What one mapped import did, with its rejected rows (row, field, reason) as JSON.
event_imports = Table(
    "event_imports",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("mapping", String(100), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("events_read", Integer, nullable=False),
    Column("stored", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("dropped_by_consent", Integer, nullable=False),
    Column("consents_recorded", Integer, nullable=False),
    Column("rejected", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
    Index("ix_event_imports_business_id", "business_id", "created_at"),
)
