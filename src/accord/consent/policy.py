"""The collection policy: a pure decision per event from its purpose, consent and regime.

Precedence for an event's purpose (named by the policy's event → purpose mapping):
1. "necessary" events are always kept;
2. an explicit choice (ledger, else `context.consent.categoryPreferences`) decides,
   except that under the CCPA a GPC signal overrides an earlier opt-in to marketing
   unless the opt-in was itself given with GPC on (`consented_with_gpc`);
3. without one, Global Privacy Control refuses marketing in opt-out regimes;
4. otherwise the regime's default: opt-in regimes (GDPR, UK GDPR, LGPD) refuse,
   opt-out regimes (CCPA, default) allow.
A refused track / page / screen is kept as an anonymous count (identifiers and free
text removed) when the policy allows anonymous counting, else dropped; refused
identify / group / alias calls, which are nothing but identifiers, are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from accord.consent.models import GPC_OVERRIDES_OPT_IN, OPT_IN_REGIMES

ADVERTISING_PURPOSE = "marketing"
COUNTABLE_TYPES = frozenset({"track", "page", "screen"})


class Outcome(Enum):
    KEEP = "keep"
    ANONYMISE = "anonymise"
    DROP = "drop"


@dataclass(frozen=True)
class Policy:
    event_purposes: Mapping[str, str] = field(default_factory=dict)
    default_purpose: str = "statistics"
    anonymous_counting: bool = True
    honour_gpc: bool = True


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    purpose: str
    reason: str


def event_purpose(event: Mapping[str, Any], policy: Policy) -> str:
    """The purpose an event serves: by its name (track), else by "$<type>", else default."""
    kind = str(event.get("type", ""))
    mapping = policy.event_purposes
    if kind == "track" and isinstance(event.get("event"), str) and event["event"] in mapping:
        return mapping[event["event"]]
    return mapping.get(f"${kind}", policy.default_purpose)


def preferences_of(event: Mapping[str, Any]) -> dict[str, bool] | None:
    """`context.consent.categoryPreferences` (Segment's convention), keys lower-cased."""
    context = event.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return None
    return {str(k).lower(): v for k, v in preferences.items() if isinstance(v, bool)}


def gpc_of(event: Mapping[str, Any]) -> bool:
    context = event.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    return isinstance(consent, dict) and consent.get("gpc") is True


def decide(
    event: Mapping[str, Any],
    *,
    choices: Mapping[str, bool] | None,
    regime: str,
    gpc: bool,
    policy: Policy,
    consented_with_gpc: frozenset[str] = frozenset(),
) -> Verdict:
    """Keep, anonymise or drop one event. Pure: everything it needs is in its arguments."""
    purpose = event_purpose(event, policy)
    if purpose == "necessary":
        return Verdict(Outcome.KEEP, purpose, "strictly necessary")
    granted = choices.get(purpose) if choices is not None else None
    if (
        granted is True
        and gpc
        and policy.honour_gpc
        and purpose == ADVERTISING_PURPOSE
        and regime in GPC_OVERRIDES_OPT_IN
        and purpose not in consented_with_gpc
    ):
        granted = None  # GPC after the opt-in: the opt-in no longer stands
    if granted is True:
        return Verdict(Outcome.KEEP, purpose, f"{purpose} granted")
    if granted is False:
        reason = f"{purpose} refused"
    elif gpc and policy.honour_gpc and purpose == ADVERTISING_PURPOSE:
        reason = "Global Privacy Control opts out of sale and sharing"
    elif regime in OPT_IN_REGIMES:
        reason = f"no consent to {purpose} yet ({regime} requires opt-in)"
    else:
        return Verdict(Outcome.KEEP, purpose, f"{regime} allows {purpose} until opt-out")
    if policy.anonymous_counting and event.get("type") in COUNTABLE_TYPES:
        return Verdict(Outcome.ANONYMISE, purpose, reason)
    return Verdict(Outcome.DROP, purpose, reason)
