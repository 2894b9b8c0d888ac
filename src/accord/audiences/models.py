"""Tables of audiences, their members, entries and exits, sizes and webhooks;
the API's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

audiences = Table(
    "audiences",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    # The JSON form of the definition; the text form is rendered from it.
    Column("definition", Text, nullable=False),
    Column("predefined", Boolean, nullable=False),
    # Members of a suppression audience are left out of every activation.
    Column("suppression", Boolean, nullable=False),
    Column("size", Integer, nullable=True),
    Column("refreshed_at", instant(), nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
    UniqueConstraint("business_id", "slug"),
)

audience_members = Table(
    "audience_members",
    metadata,
    Column("audience_id", id_column_type(), ForeignKey("audiences.id"), primary_key=True),
    Column("profile_id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("entered_at", instant(), nullable=False),
    Index("ix_audience_members_business_profile", "business_id", "profile_id"),
)

# Entries and exits, in order: what journeys and webhook destinations consume.
audience_changes = Table(
    "audience_changes",
    metadata,
    Column("seq", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("audience_id", id_column_type(), ForeignKey("audiences.id"), nullable=False),
    Column("profile_id", id_column_type(), nullable=False),
    Column("change", String(8), nullable=False),
    Column("origin", String(8), nullable=False),
    Column("at", instant(), nullable=False),
    Index("ix_audience_changes_audience_seq", "audience_id", "seq"),
)

audience_sizes = Table(
    "audience_sizes",
    metadata,
    Column("audience_id", id_column_type(), ForeignKey("audiences.id"), primary_key=True),
    Column("at", instant(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("size", Integer, nullable=False),
)

audience_webhooks = Table(
    "audience_webhooks",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("audience_id", id_column_type(), ForeignKey("audiences.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("purpose", String(100), nullable=False),
    # The last audience change delivered (seq of audience_changes).
    Column("delivered_seq", SequenceInt, nullable=False),
    Column("created_at", instant(), nullable=False),
    # Delivery runs in a row that failed on the pending batch (after `delivered_seq`);
    # back to 0 once a batch is delivered or parked.
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_attempt_at", instant(), nullable=True),
    Index("ix_audience_webhooks_audience", "audience_id"),
)

# Batches a destination did not accept, parked so later changes could flow: the exact
# body and `webhook-id` sent, so a replay is the same message to the receiver.
audience_webhook_dead_letters = Table(
    "audience_webhook_dead_letters",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("webhook_id", id_column_type(), ForeignKey("audience_webhooks.id"), nullable=False),
    Column("audience_id", id_column_type(), ForeignKey("audiences.id"), nullable=False),
    # The audience changes the batch covers (seq of audience_changes, inclusive).
    Column("first_seq", SequenceInt, nullable=False),
    Column("last_seq", SequenceInt, nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("body", Text, nullable=False),
    # Failed delivery runs before it was parked, and failed replays since.
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    # parked, replayed or discarded
    Column("status", String(16), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("resolved_at", instant(), nullable=True),
    Index("ix_audience_webhook_dead_letters_webhook_status", "webhook_id", "status"),
    Index("ix_audience_webhook_dead_letters_business_status", "business_id", "status"),
)


# API schemas ----------------------------------------------------------------------


class AudienceIn(BaseModel):
    """A new audience: the definition as JSON (`definition`) or as text (`text`)."""

    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9\-]*$")
    description: str = Field(default="", max_length=2000)
    definition: dict[str, Any] | None = None
    text: str | None = Field(default=None, max_length=20_000)
    suppression: bool = False


class DefinitionIn(BaseModel):
    definition: dict[str, Any] | None = None
    text: str | None = Field(default=None, max_length=20_000)


class AudienceView(BaseModel):
    id: str
    slug: str
    name: str
    description: str
    definition: dict[str, Any]
    text: str
    predefined: bool
    suppression: bool
    realtime: bool
    size: int | None
    refreshed_at: datetime | None


class Validated(BaseModel):
    definition: dict[str, Any]
    text: str
    realtime: bool


class Member(BaseModel):
    profile_id: str
    traits: dict[str, Any]


class Preview(BaseModel):
    size: int
    sample: list[Member]


class SizePoint(BaseModel):
    at: datetime
    size: int


class Overlap(BaseModel):
    first: str
    second: str
    first_size: int
    second_size: int
    both: int
    jaccard: float


class Change(BaseModel):
    seq: int
    audience_id: str
    profile_id: str
    # `erased`: the person was erased (subject rights); destinations erase them too.
    change: Literal["entered", "exited", "erased"]
    origin: Literal["realtime", "refresh", "erasure"]
    at: datetime


class RefreshResult(BaseModel):
    audience_id: str
    size: int
    entered: int
    exited: int


class WebhookIn(BaseModel):
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    purpose: str = Field(default="marketing", min_length=1, max_length=100)


class WebhookView(BaseModel):
    """A destination and how its deliveries go (never its secret)."""

    id: str
    audience_id: str
    url: str
    purpose: str
    delivered_seq: int
    # Failed delivery runs in a row on the pending batch; 0 when all is well.
    failures: int
    last_error: str | None
    last_attempt_at: datetime | None
    # Batches parked and still waiting for a replay or a discard.
    parked: int


DeadLetterStatus = Literal["parked", "replayed", "discarded"]


class DeadLetterView(BaseModel):
    """A batch a destination did not accept, with what it holds."""

    id: str
    webhook_id: str
    url: str
    audience_id: str
    first_seq: int
    last_seq: int
    message_id: str
    changes: int
    # Erasure notices in the batch: until it is replayed, the receiver still holds
    # these people's data.
    erasures: int
    attempts: int
    last_error: str
    status: DeadLetterStatus
    created_at: datetime
    resolved_at: datetime | None
