"""Tables and schemas of the minimal profile store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, String, Table, Text

from accord.store.metadata import id_column_type, instant, metadata

profiles = Table(
    "profiles",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("traits", Text, nullable=False),
    # When each trait was last set, by event time, so late or reordered events
    # never overwrite a newer value.
    Column("trait_times", Text, nullable=False),
    Column("first_seen", instant(), nullable=False),
    Column("last_seen", instant(), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
)

profile_identifiers = Table(
    "profile_identifiers",
    metadata,
    Column("business_id", id_column_type(), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("profile_id", id_column_type(), ForeignKey("profiles.id"), nullable=False, index=True),
    Column("first_seen", instant(), nullable=False),
)


class Identifier(BaseModel):
    kind: str
    value: str


class ProfileView(BaseModel):
    id: str
    business_id: str
    identifiers: list[Identifier]
    traits: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    recent_events: list[dict[str, Any]]
