"""Campaign KPIs from messages and their events, with intervals; the A/B test's decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select

from accord.core.errors import Conflict
from accord.messaging.campaigns import campaign_row
from accord.messaging.models import email_events, email_messages
from accord.messaging.stats import AbDecision, Rate, choose_winner, rate


@dataclass(frozen=True)
class Kpis:
    sent: int
    delivered: int
    human_openers: int
    machine_opens: int
    clickers: int
    unsubscribes: int
    complaints: int
    bounces: int
    rates: dict[str, Rate]


def _kpis(conn: Connection, where: Any) -> Kpis:
    counts: dict[str, int] = dict(
        conn.execute(
            select(email_messages.c.status, func.count())
            .where(where, email_messages.c.kind == "campaign")
            .group_by(email_messages.c.status)
        ).all()
    )
    bounced = counts.get("bounced", 0)
    sent = counts.get("sent", 0) + bounced
    delivered = sent - bounced
    joined = email_events.join(email_messages, email_events.c.message_id == email_messages.c.id)

    def distinct(*conditions: Any) -> int:
        return int(
            conn.execute(
                select(func.count(func.distinct(email_events.c.message_id)))
                .select_from(joined)
                .where(where, email_messages.c.kind == "campaign", *conditions)
            ).scalar()
            or 0
        )

    human = email_events.c.machine.is_(False)
    # A person who clicked has opened, even when images were blocked.
    openers = distinct(email_events.c.kind.in_(("open", "click")), human)
    clickers = distinct(email_events.c.kind == "click", human)
    machine_opens = distinct(email_events.c.kind == "open", email_events.c.machine.is_(True))
    unsubscribes = distinct(email_events.c.kind == "unsubscribe")
    complaints = distinct(email_events.c.kind == "complaint")
    return Kpis(
        sent=sent,
        delivered=delivered,
        human_openers=openers,
        machine_opens=machine_opens,
        clickers=clickers,
        unsubscribes=unsubscribes,
        complaints=complaints,
        bounces=bounced,
        rates={
            "delivery_rate": rate(delivered, sent, name="delivery_rate"),
            "open_rate": rate(openers, delivered, name="open_rate"),
            "click_through_rate": rate(clickers, delivered, name="click_through_rate"),
            "click_to_open_rate": rate(clickers, openers),
            "unsubscribe_rate": rate(unsubscribes, delivered),
            "bounce_rate": rate(bounced, sent),
            "complaint_rate": rate(complaints, delivered),
        },
    )


def campaign_kpis(
    conn: Connection, *, business_id: str, campaign_id: str, variant: str | None = None
) -> Kpis:
    campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    where = and_(
        email_messages.c.business_id == business_id, email_messages.c.campaign_id == campaign_id
    )
    if variant is not None:
        where = and_(where, email_messages.c.variant == variant)
    return _kpis(conn, where)


def kpis_between(conn: Connection, *, business_id: str, since: datetime, until: datetime) -> Kpis:
    """KPIs of every campaign message sent in [since, until), all campaigns together."""
    where = and_(
        email_messages.c.business_id == business_id,
        email_messages.c.sent_at >= since,
        email_messages.c.sent_at < until,
    )
    return _kpis(conn, where)


def kpis_by_day(
    conn: Connection, *, business_id: str, since: datetime, until: datetime
) -> list[tuple[str, Kpis]]:
    """KPIs of the campaign messages sent each day (UTC) in [since, until)."""
    days: list[tuple[str, Kpis]] = []
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        end = day + timedelta(days=1)
        where = and_(
            email_messages.c.business_id == business_id,
            email_messages.c.sent_at >= day,
            email_messages.c.sent_at < end,
        )
        kpis = _kpis(conn, where)
        if kpis.sent:
            days.append((day.date().isoformat(), kpis))
        day = end
    return days


def ab_decision(conn: Connection, *, business_id: str, campaign_id: str) -> AbDecision:
    campaign = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    if not campaign.ab_test:
        raise Conflict(f"campaign {campaign_id} has no A/B test")
    ab = orjson.loads(campaign.ab_test)
    a = campaign_kpis(conn, business_id=business_id, campaign_id=campaign_id, variant="A")
    b = campaign_kpis(conn, business_id=business_id, campaign_id=campaign_id, variant="B")
    metric = "clickers" if ab["metric"] == "clicks" else "human_openers"
    return choose_winner(
        successes_a=getattr(a, metric),
        trials_a=a.delivered,
        successes_b=getattr(b, metric),
        trials_b=b.delivered,
        min_sample=ab["min_sample"],
        alpha=ab["alpha"],
    )
