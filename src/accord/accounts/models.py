"""Tables and schemas of businesses, people, assets, permissions, sessions and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

businesses = Table(
    "businesses",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("name", String(200), nullable=False),
    # A stable handle so `accord bootstrap` can find the business it made before.
    Column("slug", String(100), nullable=False, unique=True),
    Column("created_at", instant(), nullable=False),
    Column("contact_email", String(254), nullable=True),
    Column("address", String(500), nullable=True),
    Column("phone", String(50), nullable=True),
    Column("website", String(300), nullable=True),
    # "advertiser" advertises for itself; "agency" serves other businesses.
    Column("kind", String(20), nullable=False, server_default="advertiser"),
    Column("email_verified_at", instant(), nullable=True),
    # none | admins | everyone
    Column("two_factor_policy", String(20), nullable=False, server_default="none"),
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
    # Web origins browsers may send from, one a line; NULL: any origin (see accounts/origins).
    Column("allowed_origins", Text, nullable=True),
)

people = Table(
    "people",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_enabled_at", instant(), nullable=True),
    Column("created_at", instant(), nullable=False),
    # The last 30-second step a code was accepted for: a code works once.
    Column("totp_last_step", BigInteger(), nullable=True),
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
    # Who made it (none for `accord bootstrap`); removing the person revokes it.
    Column("person_id", id_column_type(), ForeignKey("people.id"), nullable=True, index=True),
    # The role it acts with, and the permissions it is limited to (space-separated).
    Column("role", String(20), nullable=False, server_default="admin"),
    Column("permissions", Text(), nullable=False, server_default=""),
)

memberships = Table(
    "memberships",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("person_id", id_column_type(), ForeignKey("people.id"), primary_key=True, index=True),
    Column("role", String(20), nullable=False),
    Column("created_at", instant(), nullable=False),
)

# Every asset of every kind, whoever defines it: one row names the asset and its owner,
# so permissions, partner shares and the audit log work for kinds added later.
assets = Table(
    "assets",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("kind", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("closed_at", instant(), nullable=True),
    Index("ix_assets_business_id_kind", "business_id", "kind"),
)

properties = Table(
    "properties",
    metadata,
    Column("asset_id", id_column_type(), ForeignKey("assets.id"), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("platform", String(10), nullable=False),  # site | app
    Column("address", String(300), nullable=False),  # URL or app bundle id
)

ad_accounts = Table(
    "ad_accounts",
    metadata,
    Column("asset_id", id_column_type(), ForeignKey("assets.id"), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    # In minor units of the currency; none means no limit.
    Column("spend_limit_minor", BigInteger(), nullable=True),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column(
        "ad_account_id",
        id_column_type(),
        ForeignKey("ad_accounts.asset_id"),
        nullable=False,
        index=True,
    ),
    Column("name", String(200), nullable=False),
    Column("objective", String(20), nullable=False),
    Column("pricing", String(5), nullable=False),
    Column("budget_minor", BigInteger(), nullable=False),
    Column("starts_at", instant(), nullable=True),
    Column("ends_at", instant(), nullable=True),
    Column("status", String(10), nullable=False),
    Column("created_at", instant(), nullable=False),
)

social_accounts = Table(
    "social_accounts",
    metadata,
    Column("asset_id", id_column_type(), ForeignKey("assets.id"), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("network", String(20), nullable=False),
    Column("page_reference", String(200), nullable=False),
)

asset_grants = Table(
    "asset_grants",
    metadata,
    # The business the person works for (the owner, or a partner the asset is shared with).
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("person_id", id_column_type(), ForeignKey("people.id"), primary_key=True),
    Column("asset_id", id_column_type(), ForeignKey("assets.id"), primary_key=True, index=True),
    Column("tasks", String(200), nullable=False),
)

partner_shares = Table(
    "partner_shares",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column(
        "partner_business_id",
        id_column_type(),
        ForeignKey("businesses.id"),
        nullable=False,
        index=True,
    ),
    Column("asset_id", id_column_type(), ForeignKey("assets.id"), nullable=False),
    Column("tasks", String(200), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("revoked_at", instant(), nullable=True),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("email", String(254), nullable=False),
    Column("role", String(20), nullable=False),
    # JSON object: asset id -> list of tasks.
    Column("grants", Text(), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("invited_by", id_column_type(), ForeignKey("people.id"), nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("expires_at", instant(), nullable=False),
    Column("sent_at", instant(), nullable=True),
    Column("accepted_at", instant(), nullable=True),
    Column("revoked_at", instant(), nullable=True),
)

ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("person_id", id_column_type(), ForeignKey("people.id"), nullable=False, index=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=True),
    Column("csrf_token", String(64), nullable=False),
    # "password" until the second factor is given (when one is needed), then "full".
    Column("stage", String(10), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("created_at", instant(), nullable=False),
    Column("last_seen_at", instant(), nullable=False),
    Column("expires_at", instant(), nullable=False),
    Column("revoked_at", instant(), nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("person_id", id_column_type(), ForeignKey("people.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", instant(), nullable=True),
    UniqueConstraint("person_id", "code_hash"),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("at", instant(), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Index("ix_login_attempts_email_at", "email", "at"),
    Index("ix_login_attempts_ip_at", "ip", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("at", instant(), nullable=False),
    Column("actor_kind", String(10), nullable=False),  # person | token | system
    Column("actor_id", String(40), nullable=True),
    Column("actor_label", String(254), nullable=False),
    Column("action", String(80), nullable=False),
    Column("asset_kind", String(40), nullable=True),
    Column("asset_id", String(40), nullable=True),
    Column("before", Text(), nullable=True),
    Column("after", Text(), nullable=True),
    Column("ip", String(64), nullable=True),
)


class SourceRef(BaseModel):
    """What collection needs to know about the source behind a write key."""

    business_id: str
    source_id: str
    # The web origins browsers may send from; None: any origin.
    allowed_origins: tuple[str, ...] | None = None


class Bootstrap(BaseModel):
    business_id: str
    source_id: str
    write_key: str
    admin_token: str


@dataclass(frozen=True)
class AccountEmail:
    """An email about the account (invitation, address confirmation) and the link it carries.

    Without a mail server the UI shows the link to pass on instead of sending.
    """

    to: str
    subject: str
    text: str
    link: str


class Actor(BaseModel):
    """Who made a change, as the audit log records it."""

    kind: str  # person | token | system
    id: str | None = None
    label: str


class BusinessIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    contact_email: str = Field(min_length=3, max_length=254)
    address: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=50)
    website: str | None = Field(default=None, max_length=300)
    kind: str = Field(default="advertiser", description="advertiser or agency")


class BusinessView(BaseModel):
    id: str
    name: str
    contact_email: str | None
    address: str | None
    phone: str | None
    website: str | None
    kind: str
    email_verified: bool
    two_factor_policy: str
    created_at: datetime


class AssetView(BaseModel):
    id: str
    business_id: str
    kind: str
    name: str
    created_at: datetime
    closed_at: datetime | None
    details: dict[str, object] = Field(default_factory=dict)


class PixelIn(BaseModel):
    name: str
    kind: str = "web"


class PixelView(BaseModel):
    id: str
    name: str
    kind: str
    write_key: str
    enabled: bool
    created_at: datetime
    allowed_origins: list[str] | None = Field(
        default=None, description="web origins browsers may send from; null: any origin"
    )


class PixelPatch(BaseModel):
    """What changes on a pixel; fields left out keep their value."""

    name: str | None = None
    allowed_origins: list[str] | None = Field(
        default=None,
        description='origins like "https://shop.example" or "https://*.shop.example"; '
        '["*"] allows any origin again',
    )
    enabled: bool | None = Field(
        default=None, description="false: its write key stops accepting events"
    )


class PropertyIn(BaseModel):
    name: str
    platform: str = Field(description="site or app")
    address: str = Field(description="the site's URL or the app's bundle id")


class AdAccountIn(BaseModel):
    name: str
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    timezone: str = Field(description="IANA zone, e.g. Europe/Paris")
    spend_limit_minor: int | None = Field(default=None, ge=0)


class CampaignIn(BaseModel):
    name: str
    objective: str = Field(description="awareness, consideration, leads or conversions")
    pricing: str = Field(description="CPM, CPC or CPL")
    budget_minor: int = Field(ge=0)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    status: str = "draft"


class CampaignPatch(BaseModel):
    """The fields of a campaign to change; those left out keep their value."""

    name: str | None = None
    budget_minor: int | None = Field(default=None, ge=0)
    starts_at: AwareDatetime | None = Field(default=None, description="null: no start date")
    ends_at: AwareDatetime | None = Field(default=None, description="null: no end date")
    status: str | None = Field(default=None, description="draft, active, paused or ended")


class CampaignView(BaseModel):
    id: str
    ad_account_id: str
    name: str
    objective: str
    pricing: str
    budget_minor: int
    starts_at: datetime | None
    ends_at: datetime | None
    status: str
    created_at: datetime


class SocialAccountIn(BaseModel):
    name: str
    network: str = Field(description="facebook, instagram, linkedin, tiktok, x or youtube")
    page_reference: str


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    permissions: list[str]


class TokenView(BaseModel):
    id: str
    name: str
    role: str
    permissions: list[str]
    person_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenView):
    token: str = Field(description="shown once; only its hash is kept")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_kind: str
    actor_id: str | None
    actor_label: str
    action: str
    asset_kind: str | None
    asset_id: str | None
    before: object | None
    after: object | None
    ip: str | None


class InvitationIn(BaseModel):
    email: str
    role: str
    grants: dict[str, list[str]] = Field(default_factory=dict, description="asset id -> tasks")


class InvitationView(BaseModel):
    id: str
    email: str
    role: str
    grants: dict[str, list[str]]
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    accepted_at: datetime | None
    revoked_at: datetime | None
    status: str


class MemberView(BaseModel):
    person_id: str
    email: str
    name: str
    role: str
    two_factor: bool
    grants: dict[str, list[str]]


class PartnerShareIn(BaseModel):
    partner_business_id: str
    asset_id: str
    tasks: list[str]


class PartnerShareView(BaseModel):
    id: str
    business_id: str
    partner_business_id: str
    asset_id: str
    tasks: list[str]
    created_at: datetime
    revoked_at: datetime | None
