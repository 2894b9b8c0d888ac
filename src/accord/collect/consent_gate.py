"""The seam where consent decides what collection may keep; the consent context fills it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class GateDecision:
    keep: bool
    # Top-level fields of `properties`, `traits` or `context` to remove before storing.
    strip: tuple[str, ...] = ()
    reason: str = ""
    # Keep only an anonymous count: no identifiers, no free text (see `anonymise`).
    anonymise: bool = False


class ConsentGate(Protocol):
    """Decides per event; a gate may also offer `decide_many(events, *, business_id)`
    returning one decision per event, which collection then uses for a whole request."""

    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision: ...


class KeepEverything:
    """A gate that keeps every valid event whole (for tests of collection alone)."""

    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision:
        return GateDecision(keep=True)


# What an anonymous count keeps: the envelope without identifiers, numbers and flags,
# and the few text properties that describe the thing counted rather than a person.
ANONYMOUS_FIELDS = (
    "type",
    "event",
    "name",
    "category",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
)
ANONYMOUS_TEXT_PROPERTIES = frozenset(
    {"currency", "category", "product_id", "sku", "order_id_hash", "plan", "path", "title"}
)
ANONYMOUS_CONTEXT = ("library", "locale", "timezone", "campaign", "consent")


def anonymise(event: dict[str, Any]) -> dict[str, Any]:
    """The event as an anonymous aggregate: no userId, anonymousId, traits, IP, device,
    user agent or free-text property; page URLs keep their path only."""
    out = {key: event[key] for key in ANONYMOUS_FIELDS if key in event}
    properties = event.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            key: value
            for key, value in properties.items()
            if isinstance(value, bool | int | float)
            or (key in ANONYMOUS_TEXT_PROPERTIES and isinstance(value, str))
        }
    context = event.get("context")
    if isinstance(context, dict):
        kept = {key: context[key] for key in ANONYMOUS_CONTEXT if key in context}
        page = context.get("page")
        if isinstance(page, dict) and isinstance(page.get("path"), str):
            kept["page"] = {"path": page["path"]}
        out["context"] = kept
    return out


def apply_decision(event: dict[str, Any], decision: GateDecision) -> dict[str, Any]:
    if decision.anonymise:
        return anonymise(event)
    if not decision.strip:
        return event
    cleaned = dict(event)
    for section in ("properties", "traits", "context"):
        values = cleaned.get(section)
        if isinstance(values, dict):
            cleaned[section] = {k: v for k, v in values.items() if k not in decision.strip}
    return cleaned
