"""Tables and schemas of forms, leads, their consents, coupons and imports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator
from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.analytics.spend import SPEND_CHANNELS
from accord.audiences.conditions import (
    And,
    Condition,
    Definition,
    EventCondition,
    Everyone,
    Not,
    Or,
    TraitCondition,
    loose_catalog,
    problems_of,
    walk,
)
from accord.core.errors import FieldProblem
from accord.store.metadata import SequenceInt, id_column_type, instant, metadata

lead_forms = Table(
    "lead_forms",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("slug", String(100), nullable=False, unique=True),
    # Each form is a collection source: its leads' identify events name it.
    Column("source_id", id_column_type(), nullable=False),
    # Every change makes a new version; consents record the version the person saw.
    Column("version", Integer, nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
)

leads = Table(
    "leads",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("email", String(320), nullable=False),
    Column("anonymous_id", String(200), nullable=False),
    Column("name", String(200), nullable=True),
    Column("phone", String(40), nullable=True),
    Column("company", String(200), nullable=True),
    Column("answers", Text, nullable=False),
    Column("utm", Text, nullable=False),
    Column("source", String(50), nullable=False),  # form, lead_ads, csv
    Column("form_id", id_column_type(), ForeignKey("lead_forms.id"), nullable=True),
    Column("form_version", Integer, nullable=True),
    Column("import_id", id_column_type(), nullable=True),
    # pending (awaits double opt-in), confirmed
    Column("status", String(20), nullable=False),
    Column("created_at", instant(), nullable=False),
    Column("confirmed_at", instant(), nullable=True),
    Column("confirm_ip", String(64), nullable=True),
    # Lifecycle: lead → prospect → customer; awareness → consideration → decision.
    Column("stage", String(20), nullable=False, server_default="lead"),
    Column("phase", String(20), nullable=False, server_default="awareness"),
    # The score as it was at `scored_at`; it halves every half-life since.
    Column("score", Float, nullable=False, server_default="0"),
    Column("scored_at", instant(), nullable=True),
    UniqueConstraint("business_id", "email"),
)
# Consent at send time is looked up by the recipients' anonymous ids.
Index("ix_leads_business_id_anonymous_id", leads.c.business_id, leads.c.anonymous_id)

lead_consents = Table(
    "lead_consents",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("lead_id", id_column_type(), ForeignKey("leads.id"), nullable=False, index=True),
    Column("purpose", String(100), nullable=False),
    Column("form_id", id_column_type(), nullable=True),
    Column("form_version", Integer, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(500), nullable=True),
    Column("given_at", instant(), nullable=False),
    # The confirmation email that was sent, and when its link was followed.
    Column("confirmation_message_id", id_column_type(), nullable=True),
    Column("confirmed_at", instant(), nullable=True),
    Column("confirm_ip", String(64), nullable=True),
    # pending until double opt-in, then recorded (in the consent ledger too)
    Column("status", String(20), nullable=False),
)

coupon_pools = Table(
    "coupon_pools",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("name", String(200), nullable=False),
    Column("created_at", instant(), nullable=False),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), nullable=False),
    Column("pool_id", id_column_type(), ForeignKey("coupon_pools.id"), nullable=False),
    Column("code", String(100), nullable=False),
    Column("lead_id", id_column_type(), ForeignKey("leads.id"), nullable=True),
    Column("assigned_at", instant(), nullable=True),
    Column("redeemed_at", instant(), nullable=True),
    UniqueConstraint("pool_id", "code"),
    UniqueConstraint("pool_id", "lead_id"),
)

lead_stage_changes = Table(
    "lead_stage_changes",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("business_id", id_column_type(), nullable=False, index=True),
    Column("lead_id", id_column_type(), ForeignKey("leads.id"), nullable=False, index=True),
    Column("stage", String(20), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("changed_at", instant(), nullable=False),
)

lead_scoring = Table(
    "lead_scoring",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    # Rules as JSON (see ScoringIn); one set per business, replaced whole.
    Column("rules", Text, nullable=False),
    Column("half_life_days", Float, nullable=False),
    Column("consideration_at", Float, nullable=False),
    Column("prospect_at", Float, nullable=False),
    Column("updated_at", instant(), nullable=False),
)

lead_imports = Table(
    "lead_imports",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("kind", String(20), nullable=False),  # lead_ads, csv
    Column("name", String(200), nullable=False),
    # Imports of one kind share a collection source, so a lead imported twice
    # sends its identify event once (collection drops a repeated messageId).
    Column("source_id", id_column_type(), nullable=False),
    Column("spend", Float, nullable=True),
    Column("rows_read", Integer, nullable=False),
    Column("leads_added", Integer, nullable=False),
    Column("rejected", Text, nullable=False),
    Column("created_at", instant(), nullable=False),
)

FieldKind = Literal["name", "email", "phone", "company", "choice", "checkboxes", "text", "hidden"]


class FormField(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")
    kind: FieldKind
    # Labels per language ("en", "it", ...); "en" is the fallback.
    label: dict[str, str] = Field(default_factory=dict)
    required: bool = False
    options: list[str] = Field(default_factory=list)
    max_length: int = Field(default=500, ge=1, le=5000)


class ConsentPurpose(BaseModel):
    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")
    label: dict[str, str]
    required: bool = False


class FormIn(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    title: dict[str, str]
    welcome: dict[str, str] = Field(default_factory=dict)
    fields: list[FormField] = Field(min_length=1, max_length=50)
    consents: list[ConsentPurpose] = Field(default_factory=list, max_length=20)
    privacy_policy_url: HttpUrl
    thank_you: dict[str, str] = Field(default_factory=dict)
    next_url: HttpUrl | None = None
    double_opt_in: bool = True
    # Where confirmed leads go, and what they get for confirming.
    list_id: str | None = None
    coupon_pool_id: str | None = None
    # A file uploaded with PUT /api/leads/magnets/{name}, offered through expiring links.
    download_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    from_address: str = Field(min_length=3, max_length=320)
    # Region of phone numbers written without a country code (ISO 3166: "IT").
    phone_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    languages: list[str] = Field(default_factory=lambda: ["en"])

    @model_validator(mode="after")
    def _one_email_field(self) -> FormIn:
        if sum(f.kind == "email" for f in self.fields) != 1:
            raise ValueError("a form needs exactly one field of kind email")
        if len({f.key for f in self.fields}) != len(self.fields):
            raise ValueError("field keys must be unique")
        return self


class PoolIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    codes: list[str] = Field(min_length=1, max_length=100_000)


# What a rule of each kind may test: the activity it scores, seen as audience facts.
_RULE_LEAVES: dict[str, tuple[type, str]] = {
    "event": (EventCondition, "event conditions on the tracked event"),
    "email": (EventCondition, "event conditions on 'open' or 'click'"),
    "answer": (TraitCondition, "trait conditions on the form's answers"),
    "fit": (TraitCondition, "trait conditions on the lead's fields"),
}
_NEVER: dict[str, Any] = {"kind": "not", "condition": {"kind": "everyone"}}


def legacy_rule_condition(kind: Any, name: Any, value: Any) -> dict[str, Any]:
    """The old `name` and `value` of a rule (deprecated) as the audience condition with
    the same answers."""
    if kind in ("event", "email"):
        # An event or email rule with a value never matched: the activity has none.
        return {"kind": "event", "event": name} if value is None else _NEVER
    if value is None:
        return {"kind": "trait", "trait": name, "op": "exists"}
    return {"kind": "trait", "trait": name, "op": "=", "value": value}


class ScoringRule(BaseModel):
    """Points for one thing a lead does or is: an audience condition, tested against
    each activity of the rule's kind as it happens.

    kind `event`: a tracked event, tested by an event condition (`where` filters on its
    properties; `stage: customer` for purchases); `email`: a human `open` or `click` of
    marketing email, an event condition on `open` or `click`; `answer`: a form answer, a
    trait condition on the answer's key; `fit`: a lead field (name, phone, company), a
    trait condition on it. The old form, `name` and `value` (the answer or field equal
    to `value`, or present when there is none), is accepted and converted (deprecated).
    """

    kind: Literal["event", "answer", "email", "fit"]
    condition: Condition
    points: float = Field(ge=-1000, le=1000)
    stage: Literal["customer"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "condition" in data or "name" not in data:
            return data
        rest = {k: v for k, v in data.items() if k not in ("name", "value")}
        condition = legacy_rule_condition(data.get("kind"), data["name"], data.get("value"))
        return {**rest, "condition": condition}

    @model_validator(mode="after")
    def _valid(self) -> ScoringRule:
        leaf, words = _RULE_LEAVES[self.kind]
        problems = [
            FieldProblem(path, f"{self.kind} rules hold {words}")
            for path, node in walk(self.condition)
            if not isinstance(node, Everyone | And | Or | Not | leaf)
        ]
        if not problems:
            problems = problems_of(
                Definition(condition=self.condition), loose_catalog(self.condition)
            )
        if problems:
            raise ValueError("; ".join(f"{p.field}: {p.reason}" for p in problems))
        return self


class ScoringIn(BaseModel):
    rules: list[ScoringRule] = Field(default_factory=list, max_length=200)
    half_life_days: float = Field(default=30, gt=0, le=3650)
    consideration_at: float = Field(default=10, ge=0)
    prospect_at: float = Field(default=50, gt=0)


class SpendIn(BaseModel):
    campaign: str = Field(min_length=1, max_length=200)
    amount: float = Field(ge=0, allow_inf_nan=False)
    channel: str = Field("other", description="the channel of the spend model it is bought in")

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        if value not in SPEND_CHANNELS:
            raise ValueError(f"unknown channel; use one of: {', '.join(SPEND_CHANNELS)}")
        return value


class StageIn(BaseModel):
    stage: Literal["prospect", "customer"]
    reason: str = Field(min_length=1, max_length=200)
