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


class ConsentGate(Protocol):
    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision: ...


class KeepEverything:
    """The gate until consent policies exist: every valid event is kept whole."""

    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision:
        return GateDecision(keep=True)


def apply_decision(event: dict[str, Any], decision: GateDecision) -> dict[str, Any]:
    if not decision.strip:
        return event
    cleaned = dict(event)
    for section in ("properties", "traits", "context"):
        values = cleaned.get(section)
        if isinstance(values, dict):
            cleaned[section] = {k: v for k, v in values.items() if k not in decision.strip}
    return cleaned
