"""Tables and schemas of consent: configuration, notices, the ledger, the canonical state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.core.clock import iso
from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

Regime = Literal["gdpr", "uk_gdpr", "ccpa", "lgpd", "default"]
REGIMES: tuple[str, ...] = ("gdpr", "uk_gdpr", "ccpa", "lgpd", "default")
# Regimes where nothing beyond what is strictly necessary happens before a yes.
OPT_IN_REGIMES = frozenset({"gdpr", "uk_gdpr", "lgpd"})
# Regimes where a Global Privacy Control signal received after an opt-in to sale or
# sharing overrides it, unless the person opts in again while sending GPC (CCPA
# regulations §7025(c)(3)).
GPC_OVERRIDES_OPT_IN = frozenset({"ccpa"})
SOURCES: tuple[str, ...] = ("banner", "preference_centre", "form", "import", "api")
PURPOSE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
STANDARD_PURPOSES: tuple[str, ...] = ("necessary", "preferences", "statistics", "marketing")
NOTICE_TEXT_KEYS: tuple[str, ...] = (
    "title",
    "description",
    "accept_all",
    "reject_all",
    "customise",
    "save",
    "close",
    "privacy_policy_label",
    "privacy_policy_url",
    "reopen_label",
    "do_not_sell_label",
    "placeholder",
    "placeholder_button",
)
GENESIS_HASH = "0" * 64

consent_properties = Table(
    "consent_properties",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(10), nullable=False),
    # The business's own IAB-registered CMP id; TC strings are emitted only with one.
    Column("cmp_id", Integer, nullable=True),
    Column("publisher_cc", String(2), nullable=True),
    # The version of the IAB Global Vendor List the vendors were last imported from.
    Column("gvl_version", Integer, nullable=True),
    Column("cookie_name", String(64), nullable=False),
    Column("cookie_max_age_days", Integer, nullable=False),
    Column("cookie_domain", String(255), nullable=True),
    Column("created_at", instant(), nullable=False),
    UniqueConstraint("business_id", "key"),
)

consent_purposes = Table(
    "consent_purposes",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("key", String(40), nullable=False),
    # {language: {"name": ..., "description": ...}}
    Column("texts", Text, nullable=False),
    Column("legal_basis", String(24), nullable=False),
    Column("required", Boolean, nullable=False),
    Column("tcf_purposes", Text, nullable=False),
    Column("consent_mode", Text, nullable=False),
    Column("cookies", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", instant(), nullable=False),
    UniqueConstraint("business_id", "key"),
)

consent_vendors = Table(
    "consent_vendors",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("key", String(40), nullable=False),
    Column("name", String(255), nullable=False),
    Column("purposes", Text, nullable=False),
    Column("tcf_id", Integer, nullable=True),
    Column("policy_url", String(1000), nullable=True),
    Column("created_at", instant(), nullable=False),
    UniqueConstraint("business_id", "key"),
)

# One row per published (version, variant) of a property's notice. Rows are only
# ever inserted: a published text never changes, so a record's text hash always
# points at the words the person saw.
consent_notices = Table(
    "consent_notices",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("property_id", id_column_type(), ForeignKey("consent_properties.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("variant", String(16), nullable=False),
    Column("weight", Integer, nullable=False),
    Column("default_language", String(16), nullable=False),
    # {language: {text key: text}}
    Column("texts", Text, nullable=False),
    # The purposes as shown: [{"key", "texts": {language: {name, description}}, ...}]
    Column("purposes", Text, nullable=False),
    Column("layout", String(8), nullable=False),
    Column("colours", Text, nullable=False),
    Column("logo_url", String(1000), nullable=True),
    # {language: sha256 hex}, computed once at publication.
    Column("text_hashes", Text, nullable=False),
    Column("published_at", instant(), nullable=False),
    UniqueConstraint("property_id", "version", "variant"),
)

consent_geo_rules = Table(
    "consent_geo_rules",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    # "DE", "US-CA" or "*" for everywhere else.
    Column("region", String(8), nullable=False),
    Column("regime", String(16), nullable=False),
    PrimaryKeyConstraint("business_id", "region"),
)

consent_policies = Table(
    "consent_policies",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    # {event name: purpose key}; "$identify", "$page" ... name the other event types.
    Column("event_purposes", Text, nullable=False),
    Column("default_purpose", String(40), nullable=False),
    # Without consent, keep events as anonymous counts (no identifiers, no free text)
    # instead of dropping them.
    Column("anonymous_counting", Boolean, nullable=False),
    Column("honour_gpc", Boolean, nullable=False),
    Column("updated_at", instant(), nullable=False),
)

# The head of each business's hash chain. Appends lock this row (PostgreSQL) or the
# database (SQLite), so concurrent appends form one line.
consent_chain_heads = Table(
    "consent_chain_heads",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("length", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("updated_at", instant(), nullable=False),
)

consent_records = Table(
    "consent_records",
    metadata,
    Column("seq", SequenceInt, primary_key=True, autoincrement=True),
    Column("id", id_column_type(), nullable=False, unique=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    # 1, 2, 3 ... within the business: the record's place in the chain.
    Column("position", Integer, nullable=False),
    Column("property_id", id_column_type(), nullable=False),
    Column("anonymous_id", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("notice_id", id_column_type(), nullable=True),
    Column("notice_version", Integer, nullable=True),
    Column("variant", String(16), nullable=True),
    Column("text_hash", String(64), nullable=True),
    Column("language", String(16), nullable=False),
    Column("regime", String(16), nullable=False),
    Column("country", String(8), nullable=True),
    Column("purposes", Text, nullable=False),
    Column("vendors", Text, nullable=False),
    Column("special_features", Text, nullable=False),
    Column("legitimate_interest", Text, nullable=False),
    Column("gpc", Boolean, nullable=False),
    Column("sale_opt_out", Boolean, nullable=False),
    Column("source", String(24), nullable=False),
    Column("recorded_at", instant(), nullable=False),
    Column("received_at", instant(), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("device", String(16), nullable=True),
    Column("tc_string", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # A record imported from a file (a CRM opt-in column, another CMP's export): JSON
    # {"from", "notice", "key"} as the file states them; hashed with the record. NULL
    # for decisions made through Accord.
    Column("imported", Text, nullable=True),
    # The import's key of the decision, so importing the same file again adds nothing.
    Column("import_key", String(64), nullable=True),
    # What a form's consent was given on (double opt-in): JSON {"form_id", "form_version",
    # "language", "checkbox_text", "confirmation_message_id", "given_at", "confirmed_at"};
    # hashed with the record, like `imported`. NULL for every other decision.
    Column("evidence", Text, nullable=True),
    UniqueConstraint("business_id", "position"),
    UniqueConstraint("business_id", "import_key"),
    Index("ix_consent_records_anonymous", "business_id", "anonymous_id"),
    Index("ix_consent_records_user", "business_id", "user_id"),
)


# A cookie scan of a property's site, asked for in the admin UI and run by the job
# scheduler (`consent.scan`), never inside the request.
consent_scans = Table(
    "consent_scans",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("property_id", id_column_type(), ForeignKey("consent_properties.id"), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("max_pages", Integer, nullable=False),
    # False: third-party requests are recorded, then aborted (the scan contacts no tracker).
    Column("fetch_third_party", Boolean, nullable=False),
    # queued, running, succeeded, failed
    Column("status", String(16), nullable=False),
    Column("requested_by", String(255), nullable=True),
    Column("requested_at", instant(), nullable=False),
    Column("started_at", instant(), nullable=True),
    Column("finished_at", instant(), nullable=True),
    # JSON list of the pages visited.
    Column("pages", Text, nullable=False),
    Column("consent_action", String(255), nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_consent_scans_property_status", "property_id", "status"),
    Index("ix_consent_scans_business_requested", "business_id", "requested_at"),
)

# What a scan saw: one row per cookie, storage key or third-party host, as classified.
consent_scan_findings = Table(
    "consent_scan_findings",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("scan_id", id_column_type(), ForeignKey("consent_scans.id"), nullable=False),
    Column("business_id", id_column_type(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("page", String(2000), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("third_party", Boolean, nullable=False),
    Column("vendor", String(255), nullable=True),
    Column("purpose", String(40), nullable=True),
    Column("flagged", Boolean, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("example", String(500), nullable=False),
    Index("ix_consent_scan_findings_scan", "scan_id"),
)


@dataclass(frozen=True)
class Subject:
    anonymous_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class LegitimateInterest:
    purposes: dict[str, bool] = field(default_factory=dict)
    vendors: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsentState:
    """The one canonical consent state of a subject; every signal is derived from it."""

    subject: Subject
    property_id: str
    regime: str
    purposes: dict[str, bool]
    vendors: dict[str, bool] = field(default_factory=dict)
    special_features: dict[str, bool] = field(default_factory=dict)
    legitimate_interest: LegitimateInterest = field(default_factory=LegitimateInterest)
    gpc: bool = False
    sale_opt_out: bool = False
    notice_version: int = 0
    text_hash: str = ""
    language: str = "en"
    updated_at: datetime | None = None
    tc_string: str | None = None
    # Purposes whose newest grant was recorded while the browser sent GPC: the person
    # consented again after the banner told them GPC was honoured.
    granted_with_gpc: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": {
                "anonymous_id": self.subject.anonymous_id,
                "user_id": self.subject.user_id,
            },
            "property_id": self.property_id,
            "regime": self.regime,
            "purposes": dict(self.purposes),
            "vendors": dict(self.vendors),
            "special_features": dict(self.special_features),
            "legitimate_interest": {
                "purposes": dict(self.legitimate_interest.purposes),
                "vendors": dict(self.legitimate_interest.vendors),
            },
            "gpc": self.gpc,
            "sale_opt_out": self.sale_opt_out,
            "notice_version": self.notice_version,
            "text_hash": self.text_hash,
            "language": self.language,
            "updated_at": iso(self.updated_at) if self.updated_at else None,
            "tc_string": self.tc_string,
        }


# --- Admin schemas -----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertyIn(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["web", "app"] = "web"
    cmp_id: int | None = Field(default=None, ge=2, le=4095)
    publisher_cc: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    cookie_name: str = Field(default="accord_consent", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_max_age_days: int = Field(default=180, ge=1, le=395)
    cookie_domain: str | None = Field(default=None, max_length=255)


class PurposeText(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)


class PurposeIn(_Strict):
    key: str = Field(pattern=PURPOSE_KEY_PATTERN)
    texts: dict[str, PurposeText] = Field(min_length=1)
    legal_basis: Literal["consent", "legitimate_interest"] = "consent"
    tcf_purposes: list[int] = Field(default_factory=list)
    consent_mode: list[str] = Field(default_factory=list)
    cookies: list[str] = Field(default_factory=list, max_length=200)
    position: int = 100


class VendorIn(_Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = Field(min_length=1, max_length=255)
    purposes: list[str] = Field(default_factory=list)
    # A TCF vendor id is 16 bits (MaxVendorId); PostgreSQL's integer column would refuse more.
    tcf_id: int | None = Field(default=None, ge=1, le=65535)
    policy_url: str | None = Field(default=None, max_length=1000)


class Colours(_Strict):
    background: str = Field(default="#ffffff", pattern=r"^#[0-9a-fA-F]{3,8}$")
    text: str = Field(default="#111111", pattern=r"^#[0-9a-fA-F]{3,8}$")
    accent: str = Field(default="#0b57d0", pattern=r"^#[0-9a-fA-F]{3,8}$")


class NoticeVariantIn(_Strict):
    variant: str = Field(default="A", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    weight: int = Field(default=1, ge=1, le=1000)
    default_language: str = "en"
    # {language: {text key: text}}
    texts: dict[str, dict[str, str]] = Field(min_length=1)
    layout: Literal["bar", "box"] = "bar"
    colours: Colours = Field(default_factory=Colours)
    logo_url: str | None = Field(default=None, max_length=1000)


class NoticeIn(_Strict):
    """A new version of a property's notice: one variant, or several for an A/B test."""

    variants: list[NoticeVariantIn] = Field(min_length=1, max_length=8)


class GeoRuleIn(_Strict):
    region: str = Field(pattern=r"^(\*|[A-Z]{2}(-[A-Z0-9]{1,3})?)$")
    regime: Regime


class PolicyIn(_Strict):
    event_purposes: dict[str, str] = Field(default_factory=dict)
    default_purpose: str = "statistics"
    anonymous_counting: bool = True
    honour_gpc: bool = True


class NoticeRef(BaseModel):
    id: str | None = None
    version: int | None = None
    variant: str | None = None
    text_hash: str | None = None


class ConsentIn(BaseModel):
    """The body of POST /v1/consent (see docs/consent.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=255)
    user_id: str | None = Field(default=None, alias="userId", max_length=255)
    property: str = Field(min_length=1, max_length=64)
    notice: NoticeRef | None = None
    language: str = Field(default="en", max_length=16)
    regime: Regime | None = None
    source: Literal["banner", "preference_centre", "form", "import", "api"] = "banner"
    purposes: dict[str, bool]
    vendors: dict[str, bool] = Field(default_factory=dict)
    special_features: dict[str, bool] = Field(default_factory=dict, alias="specialFeatures")
    legitimate_interest: dict[str, dict[str, bool]] = Field(
        default_factory=dict, alias="legitimateInterest"
    )
    gpc: bool = False
    tc_string: str | None = Field(default=None, alias="tcString", max_length=16_000)
    timestamp: datetime | None = None
    write_key: str | None = Field(default=None, alias="writeKey")
