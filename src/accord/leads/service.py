"""Lead scoring and lifecycle stages: rules, decayed scores, stage changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.leads.lifecycle import STAGES, decayed, match, next_stage, phase_for
from accord.leads.models import (
    ScoringIn,
    ScoringRule,
    lead_scoring,
    lead_stage_changes,
    leads,
)
from accord.leads.validation import CleanSubmission


def set_scoring(conn: Connection, *, business_id: str, data: ScoringIn) -> None:
    if data.consideration_at > data.prospect_at:
        raise InvalidInput([FieldProblem("consideration_at", "must not be above prospect_at")])
    values = {
        "rules": orjson.dumps([r.model_dump() for r in data.rules]).decode(),
        "half_life_days": data.half_life_days,
        "consideration_at": data.consideration_at,
        "prospect_at": data.prospect_at,
        "updated_at": utcnow(),
    }
    if conn.execute(
        select(lead_scoring.c.business_id).where(lead_scoring.c.business_id == business_id)
    ).first():
        conn.execute(
            update(lead_scoring).where(lead_scoring.c.business_id == business_id).values(**values)
        )
    else:
        conn.execute(lead_scoring.insert().values(business_id=business_id, **values))


def scoring_config(conn: Connection, *, business_id: str) -> ScoringIn:
    row = conn.execute(
        select(lead_scoring).where(lead_scoring.c.business_id == business_id)
    ).first()
    if row is None:
        return ScoringIn()
    return ScoringIn(
        rules=[ScoringRule.model_validate(r) for r in orjson.loads(row.rules)],
        half_life_days=row.half_life_days,
        consideration_at=row.consideration_at,
        prospect_at=row.prospect_at,
    )


PHASES = ("awareness", "consideration", "decision")


def leads_per_phase(
    conn: Connection, *, business_id: str, config: ScoringIn, now: datetime
) -> dict[str, int]:
    """How many leads' decayed score falls in each band of `config`'s thresholds now."""
    counts = dict.fromkeys(PHASES, 0)
    rows = conn.execute(
        select(leads.c.score, leads.c.scored_at).where(leads.c.business_id == business_id)
    )
    for score, scored_at in rows:
        now_score = decayed(
            score, scored_at=scored_at, now=now, half_life_days=config.half_life_days
        )
        counts[phase_for(now_score, config)] += 1
    return counts


def _apply(
    conn: Connection,
    *,
    lead: Any,
    config: ScoringIn,
    points: float,
    customer: bool,
    reason: str,
    now: datetime,
) -> None:
    score = (
        decayed(lead.score, scored_at=lead.scored_at, now=now, half_life_days=config.half_life_days)
        + points
    )
    stage = next_stage(lead.stage, score=score, customer=customer, config=config)
    phase = "decision" if stage != "lead" else phase_for(score, config)
    conn.execute(
        update(leads)
        .where(leads.c.id == lead.id)
        .values(score=score, scored_at=now, stage=stage, phase=phase)
    )
    if stage != lead.stage:
        conn.execute(
            lead_stage_changes.insert().values(
                business_id=lead.business_id,
                lead_id=lead.id,
                stage=stage,
                reason=reason[:200],
                changed_at=now,
            )
        )


def score_activity(
    conn: Connection,
    *,
    business_id: str,
    lead_id: str,
    kind: str,
    name: str,
    value: str | None = None,
    now: datetime | None = None,
    event: dict[str, Any] | None = None,
) -> float:
    """Apply the scoring rules matching one activity of a lead (a tracked `event` is
    tested whole); returns the points given."""
    config = scoring_config(conn, business_id=business_id)
    now = now or utcnow()
    found = match(config.rules, kind=kind, name=name, value=value, now=now, event=event)
    if not found.rules:
        return 0.0
    lead = conn.execute(
        select(leads).where(leads.c.id == lead_id, leads.c.business_id == business_id)
    ).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    _apply(
        conn,
        lead=lead,
        config=config,
        points=found.points,
        customer=found.customer,
        reason=f"{kind} {name}" + (f" = {value}" if value else ""),
        now=now,
    )
    return found.points


def score_submission(
    conn: Connection, *, business_id: str, lead_id: str, submission: CleanSubmission
) -> float:
    """Points for a form's answers and for how well the lead fits (fields given)."""
    total = 0.0
    for key, answer in submission.answers.items():
        for value in answer if isinstance(answer, list) else [answer]:
            total += score_activity(
                conn,
                business_id=business_id,
                lead_id=lead_id,
                kind="answer",
                name=key,
                value=value,
            )
    for key in ("name", "phone", "company"):
        value = getattr(submission, key)
        if value:
            total += score_activity(
                conn, business_id=business_id, lead_id=lead_id, kind="fit", name=key, value=value
            )
    return total


def score_email_engagement(conn: Connection, *, business_id: str, email: str, kind: str) -> None:
    """Points for a human open or click of marketing email (messaging calls this)."""
    lead_id = conn.execute(
        select(leads.c.id).where(leads.c.business_id == business_id, leads.c.email == email)
    ).scalar()
    if lead_id is not None:
        score_activity(conn, business_id=business_id, lead_id=lead_id, kind="email", name=kind)


def scores_events(conn: Connection, *, business_id: str) -> bool:
    """Whether any scoring rule of the business is about tracked events: without one,
    no event can change a lead, and processing need not look leads up."""
    return any(rule.kind == "event" for rule in scoring_config(conn, business_id=business_id).rules)


def score_event(conn: Connection, *, business_id: str, event: dict[str, Any]) -> float:
    """Points for a tracked event of a lead (by anonymousId, else by the email in
    `context.traits`); a rule with `stage: customer` (a purchase) makes the lead a customer."""
    if event.get("type") != "track" or not isinstance(event.get("event"), str):
        return 0.0
    query = select(leads.c.id).where(leads.c.business_id == business_id)
    anonymous_id = event.get("anonymousId")
    context = event.get("context") if isinstance(event.get("context"), dict) else {}
    traits = (context or {}).get("traits")
    email = traits.get("email") if isinstance(traits, dict) else None
    lead_id = None
    if isinstance(anonymous_id, str) and anonymous_id:
        lead_id = conn.execute(query.where(leads.c.anonymous_id == anonymous_id)).scalar()
    # A lead from a form without the site's anonymous id, or from an import, is known
    # by email only: the shop's events name the visitor's own anonymous id.
    if lead_id is None and isinstance(email, str):
        lead_id = conn.execute(query.where(leads.c.email == email.strip().lower())).scalar()
    if lead_id is None:
        return 0.0
    return score_activity(
        conn,
        business_id=business_id,
        lead_id=lead_id,
        kind="event",
        name=event["event"],
        event=event,
    )


def set_stage(conn: Connection, *, business_id: str, lead_id: str, stage: str, reason: str) -> None:
    """Set a stage by hand (a sale closed offline); stages never move backwards."""
    lead = conn.execute(
        select(leads).where(leads.c.id == lead_id, leads.c.business_id == business_id)
    ).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    if STAGES.index(stage) < STAGES.index(lead.stage):
        raise Conflict(f"lead {lead_id} is a {lead.stage}; stages do not move back")
    if stage == lead.stage:
        return
    conn.execute(update(leads).where(leads.c.id == lead_id).values(stage=stage, phase="decision"))
    conn.execute(
        lead_stage_changes.insert().values(
            business_id=business_id,
            lead_id=lead_id,
            stage=stage,
            reason=reason[:200],
            changed_at=utcnow(),
        )
    )
