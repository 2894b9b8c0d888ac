"""Tables of the identity graph (rules, edges, merge history, review queue) and their schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Index, String, Table, Text, UniqueConstraint

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

identity_rules = Table(
    "identity_rules",
    metadata,
    Column("business_id", id_column_type(), primary_key=True),
    Column("rules", Text, nullable=False),
    Column("updated_at", instant(), nullable=False),
)

# One row per pair of identifiers ever linked, with the evidence that first linked
# them. A removed edge stays (removed_at set) so the same pair is never linked again.
identity_edges = Table(
    "identity_edges",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("a_kind", String(32), nullable=False),
    Column("a_value", String(255), nullable=False),
    Column("b_kind", String(32), nullable=False),
    Column("b_value", String(255), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("source_id", id_column_type(), nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("inbox_seq", BigInteger, nullable=True),
    Column("occurred_at", instant(), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("removed_at", instant(), nullable=True),
    Column("removed_reason", Text, nullable=True),
    UniqueConstraint("business_id", "a_kind", "a_value", "b_kind", "b_value"),
    Index("ix_identity_edges_b", "business_id", "b_kind", "b_value"),
)

# Every merge and split, with its evidence: what joined (or parted) which profiles.
identity_merges = Table(
    "identity_merges",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("action", String(16), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("other_profile_id", id_column_type(), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("occurred_at", instant(), nullable=False),
    Column("created_at", instant(), nullable=False),
    Index("ix_identity_merges_profile", "business_id", "profile_id"),
    Index("ix_identity_merges_other", "business_id", "other_profile_id"),
)

identity_reviews = Table(
    "identity_reviews",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("profile_ids", Text, nullable=False),
    Column("identifiers", Text, nullable=False),
    Column("source_id", id_column_type(), nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("inbox_seq", BigInteger, nullable=True),
    Column("occurred_at", instant(), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("decided_at", instant(), nullable=True),
    Column("decision_note", Text, nullable=True),
    Index("ix_identity_reviews_status", "business_id", "status"),
)

# Identifiers of erased people, hashed: an event naming one is dropped before it
# reaches a profile or the lake, so a replay or a late event cannot bring them back.
identity_tombstones = Table(
    "identity_tombstones",
    metadata,
    Column("business_id", id_column_type(), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("value_hash", String(64), primary_key=True),
    Column("erasure_id", id_column_type(), nullable=False),
    Column("erased_at", instant(), nullable=False),
)


class IdentifierRef(BaseModel):
    kind: str
    value: str


class Edge(BaseModel):
    id: int
    a: IdentifierRef
    b: IdentifierRef
    rule: str
    source_id: str | None
    message_id: str | None
    occurred_at: datetime
    removed_at: datetime | None


class MergeRecord(BaseModel):
    id: int
    action: Literal["merge", "split"]
    profile_id: str
    other_profile_id: str
    rule: str
    evidence: dict[str, Any]
    occurred_at: datetime
    created_at: datetime


class ReviewItem(BaseModel):
    id: str
    status: Literal["pending", "accepted", "rejected"]
    reason: str
    profile_ids: list[str]
    identifiers: list[IdentifierRef]
    message_id: str | None
    occurred_at: datetime
    created_at: datetime
    decided_at: datetime | None
    decision_note: str | None


class TraitChange(BaseModel):
    trait: str
    before: dict[str, Any]
    after: Any


class ReviewDiff(BaseModel):
    """What accepting a review item would change, computed without changing anything."""

    review: ReviewItem
    profiles_merged: list[str]
    surviving_profile: str
    identifiers_added: dict[str, list[IdentifierRef]]
    traits_changed: list[TraitChange]
    computed_after: dict[str, Any]
    guardrail_violations: list[str]


class SplitReport(BaseModel):
    edge_id: int
    profiles: list[str]
    identifiers: dict[str, list[IdentifierRef]]
    events: dict[str, int]
