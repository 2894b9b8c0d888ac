"""Tables and schemas of email templates, lists, campaigns, messages and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

email_templates = Table(
    "email_templates",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(200), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
)

email_lists = Table(
    "email_lists",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(200), nullable=False),
    Column("created_at", instant(), nullable=False),
)

email_list_members = Table(
    "email_list_members",
    metadata,
    Column("list_id", id_column_type(), ForeignKey("email_lists.id"), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("anonymous_id", String(200), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("traits", Text, nullable=False),
    Column("added_at", instant(), nullable=False),
)

email_campaigns = Table(
    "email_campaigns",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(200), nullable=False),
    Column("template_id", id_column_type(), ForeignKey("email_templates.id"), nullable=False),
    Column("list_id", id_column_type(), ForeignKey("email_lists.id"), nullable=True),
    Column("audience_id", String(100), nullable=True),
    Column("from_address", String(320), nullable=False),
    # draft → scheduled → sending → (testing → sending) → sent
    Column("status", String(20), nullable=False),
    Column("due_at", instant(), nullable=True),
    # A/B test: JSON of the variant B, sample share, metric, minimum sample, wait.
    Column("ab_test", Text, nullable=True),
    Column("winner", String(1), nullable=True),
    Column("spend", Float, nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("sent_at", instant(), nullable=True),
)
Index("ix_email_campaigns_status_due_at", email_campaigns.c.status, email_campaigns.c.due_at)

email_messages = Table(
    "email_messages",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("campaign_id", id_column_type(), ForeignKey("email_campaigns.id"), nullable=True),
    # The A/B arm (A, B) a message was sent in; A without a test; none for the winner's
    # rollout after a test (campaigns.winner says which content it had).
    Column("variant", String(1), nullable=True),
    Column("kind", String(20), nullable=False),  # campaign, test, confirmation
    Column("email", String(320), nullable=False),
    Column("anonymous_id", String(200), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("subject", String(500), nullable=False),
    # The links of the message, in order: a click is redirected only to one of them.
    Column("links", Text, nullable=False),
    # queued, sent, failed, skipped (send-time checks refused), bounced
    Column("status", String(20), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("sent_at", instant(), nullable=True),
    UniqueConstraint("campaign_id", "email"),
)

email_events = Table(
    "email_events",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("message_id", id_column_type(), ForeignKey("email_messages.id"), nullable=False),
    Column("campaign_id", id_column_type(), nullable=True, index=True),
    # open, click, unsubscribe, bounce, complaint
    Column("kind", String(20), nullable=False),
    # Opens and clicks by privacy proxies, link scanners or too soon after delivery.
    Column("machine", Boolean, nullable=False),
    Column("detail", String(500), nullable=True),
    Column("user_agent", String(500), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("occurred_at", instant(), nullable=False),
)
Index("ix_email_events_message_id_kind", email_events.c.message_id, email_events.c.kind)


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=500)
    html: str = Field(min_length=1, max_length=500_000)
    text: str = Field(default="", max_length=500_000)


class TemplatePatch(BaseModel):
    """The parts of a template to change; those left out keep their value."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    html: str | None = Field(default=None, min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)


class ListIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class MemberIn(BaseModel):
    email: EmailStr
    anonymous_id: str | None = None
    user_id: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)


class AbTestIn(BaseModel):
    """Variant B of a campaign: another subject or another template, on a sample."""

    subject: str | None = Field(default=None, max_length=500)
    template_id: str | None = None
    # Share of the recipients that gets A or B (half each); the rest gets the winner.
    sample_share: float = Field(default=0.2, gt=0, le=1)
    metric: Literal["clicks", "human_opens"] = "clicks"
    min_sample: int = Field(default=100, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    # How long the sample has to open and click before the winner is chosen.
    wait_hours: float = Field(default=4, ge=0, le=24 * 14)


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    template_id: str
    list_id: str | None = None
    audience_id: str | None = None
    from_address: EmailStr
    due_at: datetime | None = None
    ab_test: AbTestIn | None = None
    spend: float | None = Field(default=None, ge=0)


class CampaignPatch(BaseModel):
    """What to change on a draft or scheduled campaign; fields left out keep their value.

    To move a campaign from a list to an audience, give `audience_id` and `list_id: null`;
    `due_at: null` makes a scheduled campaign a draft again.
    """

    name: str | None = Field(default=None, min_length=1, max_length=200)
    template_id: str | None = None
    list_id: str | None = None
    audience_id: str | None = None
    from_address: EmailStr | None = None
    due_at: datetime | None = None
    ab_test: AbTestIn | None = None
    spend: float | None = Field(default=None, ge=0)


class TestSendIn(BaseModel):
    to: list[EmailStr] = Field(min_length=1, max_length=20)
