"""Tables and schemas of businesses, sources and admin tokens."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Boolean, Column, ForeignKey, String, Table

from accord.store.metadata import id_column_type, instant, metadata

businesses = Table(
    "businesses",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("name", String(200), nullable=False),
    # A stable handle so `accord bootstrap` can find the business it made before.
    Column("slug", String(100), nullable=False, unique=True),
    Column("created_at", instant(), nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(50), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("write_key", String(80), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", instant(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", instant(), nullable=False),
    Column("last_used_at", instant(), nullable=True),
    Column("revoked_at", instant(), nullable=True),
)


class SourceRef(BaseModel):
    """What collection needs to know about the source behind a write key."""

    business_id: str
    source_id: str


class Bootstrap(BaseModel):
    business_id: str
    source_id: str
    write_key: str
    admin_token: str
