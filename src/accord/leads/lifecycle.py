"""Lead scoring and lifecycle as pure functions: decay, rule matching, phases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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


def match(rules: Sequence[ScoringRule], *, kind: str, name: str, value: str | None = None) -> Match:
    """Points of every rule of `kind` that matches `name` (and `value` when the rule has one)."""
    found = tuple(
        rule
        for rule in rules
        if rule.kind == kind
        and rule.name == name
        and (rule.value is None or (value is not None and rule.value == value))
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
