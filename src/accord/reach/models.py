"""The suppression table and the API's schemas of suppressions and reach decisions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import Column, String, Table

from accord.store.metadata import id_column_type, instant, metadata

# Identifier kinds a suppression may name; `profile` is a profile id.
SUPPRESSION_KINDS = ("email", "phone", "user_id", "anonymous_id", "profile")

suppressions = Table(
    "suppressions",
    metadata,
    Column("business_id", id_column_type(), primary_key=True),
    # email, phone, user_id, anonymous_id or profile
    Column("kind", String(32), primary_key=True),
    # Normalised by `identity.rules.normalise` (phones in E.164, emails lower-case), or
    # `sha256:<hex>` once the person was erased (`service.suppression_hash`).
    Column("value", String(320), primary_key=True),
    # unsubscribed, hard_bounce, complaint, manual, list <name>, ...
    Column("reason", String(50), nullable=False),
    # Who wrote it: api, page, email (unsubscribes and bounces), journey, cli.
    Column("source", String(32), nullable=False),
    # The one channel it stops (an email address that bounced stops email, not SMS to
    # the same person); null: every channel and export.
    Column("channel", String(32), nullable=True),
    Column("created_at", instant(), nullable=False),
)


class SuppressionIn(BaseModel):
    kind: Literal["email", "phone", "user_id", "anonymous_id", "profile"]
    value: str = Field(min_length=1, max_length=255)
    reason: str = Field(default="manual", min_length=1, max_length=32)


class ReachView(BaseModel):
    """A decision for one person and channel."""

    channel: str
    purpose: str
    allowed: bool
    reason: str | None = Field(
        default=None,
        description="complained, bounced, unsubscribed, suppressed, no_consent, no_address",
    )
    detail: str = ""
    profile_id: str | None = None
