"""Lead scoring and lifecycle as pure functions: decay, rule matching, phases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.audiences.conditions import loose_catalog
from accord.audiences.evaluate import EventFacts, ProfileFacts, matches, raw_event_facts
from accord.leads.models import ScoringIn, ScoringRule

STAGES = ("lead", "prospect", "customer")
PHASES = ("awareness", "consideration", "decision")


def decayed(
    score: float, *, scored_at: datetime | None, now: datetime, half_life_days: float
) -> float:
    """The score now: it halves every `half_life_days` since it was last changed."""
    if scored_at is None or score == 0:
        return score
    days = max(0.0, (now - scored_at).total_seconds() / 86400)
    return float(score * 0.5 ** (days / half_life_days))


@dataclass(frozen=True)
class Match:
    points: float
    customer: bool
    rules: tuple[ScoringRule, ...]


def activity_facts(
    kind: str,
    name: str,
    value: str | None,
    *,
    now: datetime,
    event: Mapping[str, Any] | None = None,
) -> ProfileFacts:
    """One activity as the facts a rule's audience condition is tested on: a tracked
    event or an email `open`/`click` as the one event, an answer or a field as a trait."""
    if kind == "event":
        events = [raw_event_facts(event or {"event": name}, now)]
        return ProfileFacts(profile_id="", traits={}, first_seen=now, last_seen=now, events=events)
    if kind == "email":
        events = [EventFacts(event=name, timestamp=now, properties={})]
        return ProfileFacts(profile_id="", traits={}, first_seen=now, last_seen=now, events=events)
    return ProfileFacts(profile_id="", traits={name: value}, first_seen=now, last_seen=now)


def match(
    rules: Sequence[ScoringRule],
    *,
    kind: str,
    name: str,
    value: str | None = None,
    now: datetime,
    event: Mapping[str, Any] | None = None,
) -> Match:
    """Points of every rule of `kind` whose condition holds for the activity."""
    facts = activity_facts(kind, name, value, now=now, event=event)
    found = tuple(
        rule
        for rule in rules
        if rule.kind == kind
        and matches(
            rule.condition, facts, catalog=loose_catalog(rule.condition, facts.traits), now=now
        )
    )
    return Match(
        points=sum(rule.points for rule in found),
        customer=any(rule.stage == "customer" for rule in found),
        rules=found,
    )


def phase_for(score: float, config: ScoringIn) -> str:
    if score >= config.prospect_at:
        return "decision"
    if score >= config.consideration_at:
        return "consideration"
    return "awareness"


def next_stage(current: str, *, score: float, customer: bool, config: ScoringIn) -> str:
    """Stages only move forward: a prospect whose score decays stays a prospect."""
    if customer or current == "customer":
        return "customer"
    if current == "prospect" or score >= config.prospect_at:
        return "prospect"
    return "lead"
