"""Tables and schemas of the minimal profile store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

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

# Every event linked to a profile, kept so that a split profile can be derived again
# from the events of each part, and for the timeline and subject-rights exports
# (the inbox forgets processed events after its retention window).
profile_events = Table(
    "profile_events",
    metadata,
    Column("inbox_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("business_id", id_column_type(), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("occurred_at", instant(), nullable=False),
    # The identifiers the event was resolved by, most trusted first (JSON).
    Column("identifiers", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_profile_events_profile", "profile_id", "occurred_at"),
)

# Traits computed from a profile's events; typed columns for what audiences filter on,
# `details` (JSON) for the lists and per-event counts.
profile_computed = Table(
    "profile_computed",
    metadata,
    Column("profile_id", id_column_type(), ForeignKey("profiles.id"), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("event_count", Integer, nullable=False),
    Column("order_count", Integer, nullable=False),
    Column("spend_cents", BigInteger, nullable=False),
    Column("last_order_at", instant(), nullable=True),
    Column("last_cart_at", instant(), nullable=True),
    Column("cart_abandoned", Boolean, nullable=False),
    Column("details", Text, nullable=False),
)

# The RFM quintile boundaries of each business's last batch run (profiles/rfm.py), so
# one profile can be scored in real time as the batch would score it.
rfm_boundaries = Table(
    "rfm_boundaries",
    metadata,
    Column("business_id", id_column_type(), primary_key=True),
    Column("as_of", instant(), nullable=False),
    Column("customers", Integer, nullable=False),
    # Four ascending cut points each (JSON lists of numbers).
    Column("recency", Text, nullable=False),
    Column("frequency", Text, nullable=False),
    Column("monetary", Text, nullable=False),
    Column("computed_at", instant(), nullable=False),
)


class Identifier(BaseModel):
    kind: str
    value: str


class ProfileView(BaseModel):
    id: str
    business_id: str
    identifiers: list[Identifier]
    traits: dict[str, Any]
    # When each trait was last set (event time), ISO-8601.
    trait_times: dict[str, str]
    # Traits derived from events: see `ProfileState.computed` in profiles/derive.py.
    computed: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    recent_events: list[dict[str, Any]]


class AudienceMembership(BaseModel):
    audience_id: str
    slug: str
    name: str
    entered_at: datetime


class ProfileDetail(ProfileView):
    # Granted purposes by name, from the consent ledger (purposes never decided are absent).
    consent: dict[str, bool] | None
    # Channels (email, sms, whatsapp, push) the person has an address on and may be
    # messaged on now: consent for the channel's purpose, not suppressed.
    reachable_channels: list[str] = []
    # The audiences the person is a member of now.
    audiences: list[AudienceMembership] = []
