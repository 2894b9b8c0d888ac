"""The inbox: accepted events, durable before acknowledgement, processed in order."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, UniqueConstraint, text

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
