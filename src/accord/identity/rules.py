"""Identifier types, a business's identity rules, and pure functions that clean identifiers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, Field, field_validator, model_validator

from accord.identity.matching_config import MatchingConfig

BUILTIN_KINDS = ("user_id", "email", "phone", "device_id", "anonymous_id")
MAX_VALUE_LENGTH = 255
_CUSTOM_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Placeholders that SDKs and forms send when they have no real value; linking on them
# would join every visitor who sent one into a single profile.
DEFAULT_BLOCKED_VALUES = (
    "null",
    "undefined",
    "anonymous",
    "none",
    "nan",
    "0",
    "-1",
    "[object object]",
    "",
)
DEFAULT_BLOCKED_PATTERNS = (r"^[0-]*$",)

TraitPolicy = Literal["latest", "first", "max", "min"]


class Limit(BaseModel):
    """At most `max` values of a type in one profile, counting only values first seen
    within `window_days` before the event when a window is set."""

    max: int = Field(ge=1)
    window_days: int | None = Field(default=None, ge=1)


def _default_limits() -> dict[str, Limit]:
    # Like Segment Unify's defaults: one user id, a few emails, phones and devices,
    # many anonymous ids (a person clears cookies and changes browsers).
    return {
        "user_id": Limit(max=1),
        "email": Limit(max=5),
        "phone": Limit(max=5),
        "device_id": Limit(max=5),
        "anonymous_id": Limit(max=1000),
    }


class IdentityRules(BaseModel):
    """How one business links identifiers into profiles."""

    custom_kinds: list[str] = Field(
        default_factory=list,
        description="Extra identifier types (CRM id, loyalty card...), read from "
        "context.externalIds entries of that type and from traits of that name",
    )
    priority: list[str] = Field(
        default_factory=list,
        description="Every identifier type, most trusted first; empty means the default "
        "order with custom types just before anonymous_id",
    )
    limits: dict[str, Limit] = Field(default_factory=_default_limits)
    hard_kinds: list[str] = Field(
        default_factory=lambda: ["user_id"],
        description="Types of which a profile may never hold two different values",
    )
    blocked_values: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_VALUES))
    blocked_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_PATTERNS))
    max_component_identifiers: int = Field(
        default=100,
        ge=2,
        description="A merge that would make a profile with more identifiers waits "
        "in the review queue",
    )
    default_phone_region: str | None = Field(
        default=None, description="ISO country for phone numbers written without +"
    )
    trait_policies: dict[str, TraitPolicy] = Field(
        default_factory=dict, description="Per trait: which value wins; default latest"
    )
    matching: MatchingConfig | None = Field(
        default=None,
        description="Probabilistic matching of profiles that share no identifier "
        "(`accord identity match`); none: not used",
    )

    @field_validator("custom_kinds")
    @classmethod
    def _custom_kind_names(cls, kinds: list[str]) -> list[str]:
        for kind in kinds:
            if not _CUSTOM_KIND.match(kind) or kind in BUILTIN_KINDS:
                raise ValueError(f"{kind!r} is not a valid new identifier type name")
        if len(set(kinds)) != len(kinds):
            raise ValueError("custom identifier types are listed twice")
        return kinds

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return patterns

    @model_validator(mode="after")
    def _complete(self) -> IdentityRules:
        kinds = [*BUILTIN_KINDS[:-1], *self.custom_kinds, BUILTIN_KINDS[-1]]
        if not self.priority:
            self.priority = kinds
        elif sorted(self.priority) != sorted(kinds):
            raise ValueError(f"priority must list each identifier type once: {kinds}")
        for kind in [*self.limits, *self.hard_kinds]:
            if kind not in kinds:
                raise ValueError(f"unknown identifier type {kind!r}")
        if self.default_phone_region is not None and (
            self.default_phone_region not in phonenumbers.SUPPORTED_REGIONS
        ):
            raise ValueError(f"unknown phone region {self.default_phone_region!r}")
        return self

    @property
    def kinds(self) -> list[str]:
        return list(self.priority)

    def rank(self, kind: str) -> int:
        return self.priority.index(kind)

    def policy(self, trait: str) -> TraitPolicy:
        return self.trait_policies.get(trait, "latest")


def normalise(kind: str, raw: Any, *, phone_region: str | None = None) -> str | None:
    """The canonical form of an identifier value, or None when it is not a usable value."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    value = str(raw).strip()
    if not value or len(value) > MAX_VALUE_LENGTH:
        return None
    if kind == "email":
        value = value.lower()
        return value if _EMAIL.match(value) else None
    if kind == "phone":
        try:
            return phone_e164(value, phone_region)
        except ValueError:
            return None
    return value


def phone_e164(value: str, region: str | None) -> str:
    """A phone number in E.164 (`+33612345678`), the one form every context stores and
    compares. A number without `+` is read in `region` (or as international when it
    starts with `00` and no region is given); one that is not a valid number there but
    is one when read with its leading digits as country code (`1-650-253-0000`, as
    Meta's examples write numbers) is taken as that. A national trunk prefix written
    `(0)` after the country code is dropped (`+44 (0)20 7946 0958`). Raises ValueError
    saying what is wrong."""
    text = value.strip()
    if region is None and text.startswith("00"):
        text = "+" + text[2:]
    number = _parsed(text, region)
    if number is None and not text.startswith("+"):
        number = _parsed("+" + text, None)
    if number is None:
        if region is None and not text.startswith("+"):
            raise ValueError("is not a phone number; write it with its country code, e.g. +39")
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The number `text` is in `region` when it is a valid one."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


@lru_cache(maxsize=64)
def _blocklist(
    values: tuple[str, ...], patterns: tuple[str, ...]
) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    return frozenset(v.casefold() for v in values), tuple(re.compile(p) for p in patterns)


def is_blocked(value: str, rules: IdentityRules) -> bool:
    """Placeholders and values an operator blocked never link anything."""
    return _blocked(value, tuple(rules.blocked_values), tuple(rules.blocked_patterns))


def _blocked(
    value: str, blocked_values: tuple[str, ...], blocked_patterns: tuple[str, ...]
) -> bool:
    values, patterns = _blocklist(blocked_values, blocked_patterns)
    if value.casefold() in values:
        return True
    return any(pattern.search(value) for pattern in patterns)


def clean(kind: str, raw: Any, rules: IdentityRules) -> str | None:
    """The identifier as the graph stores it, or None when it is unusable or blocked."""
    if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    return _clean(
        kind,
        raw,
        rules.default_phone_region,
        tuple(rules.blocked_values),
        tuple(rules.blocked_patterns),
    )


# The same anonymous ids, emails and phones come back event after event, and parsing a
# phone number costs far more than a look-up; the answer depends only on these inputs.
@lru_cache(maxsize=65_536)
def _clean(
    kind: str,
    raw: str | int,
    phone_region: str | None,
    blocked_values: tuple[str, ...],
    blocked_patterns: tuple[str, ...],
) -> str | None:
    value = normalise(kind, raw, phone_region=phone_region)
    if value is None or _blocked(value, blocked_values, blocked_patterns):
        return None
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def raw_identifiers(event: dict[str, Any], rules: IdentityRules) -> list[tuple[str, Any]]:
    """Every (type, raw value) an event names itself, before cleaning."""
    context = _mapping(event.get("context"))
    traits = {**_mapping(context.get("traits")), **_mapping(event.get("traits"))}
    found: list[tuple[str, Any]] = [
        ("user_id", event.get("userId")),
        ("anonymous_id", event.get("anonymousId")),
        ("email", traits.get("email")),
        ("phone", traits.get("phone")),
        ("device_id", _mapping(context.get("device")).get("id")),
    ]
    custom = set(rules.custom_kinds)
    for kind in rules.custom_kinds:
        found.append((kind, traits.get(kind)))
    external = context.get("externalIds")
    if isinstance(external, list):
        for entry in external:
            entry = _mapping(entry)
            if entry.get("type") in custom:
                found.append((str(entry["type"]), entry.get("id")))
    return found


def identifiers_of(event: dict[str, Any], rules: IdentityRules) -> list[tuple[str, str]]:
    """The clean identifiers of an event, most trusted first, each once."""
    seen: set[tuple[str, str]] = set()
    region = rules.default_phone_region
    blocked_values, blocked_patterns = tuple(rules.blocked_values), tuple(rules.blocked_patterns)
    for kind, raw in raw_identifiers(event, rules):
        if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int):
            continue
        value = _clean(kind, raw, region, blocked_values, blocked_patterns)
        if value is not None:
            seen.add((kind, value))
    return sorted(seen, key=lambda key: (rules.rank(key[0]), key[1]))


def counts_towards_limit(first_seen: datetime, at: datetime, limit: Limit) -> bool:
    if limit.window_days is None:
        return True
    return first_seen >= at - timedelta(days=limit.window_days)
