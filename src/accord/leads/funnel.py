"""The lead funnel: conversion between stages per source, campaign, form or import, with cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import orjson
from sqlalchemy import Connection, select

from accord.analytics import spend as spend_model
from accord.core.errors import FieldProblem, InvalidInput
from accord.leads.models import SpendIn, leads
from accord.messaging.stats import Rate, rate


class CampaignSpend(Protocol):
    """What an ad campaign cost (from its CPM, CPC or CPL pricing), when known."""

    def __call__(self, conn: Connection, *, business_id: str, campaign: str) -> float | None: ...


def set_spend(conn: Connection, *, business_id: str, data: SpendIn) -> None:
    """What a campaign's leads cost in all, kept in the one spend model (analytics.spend)."""
    spend_model.set_campaign_total(
        conn,
        business_id=business_id,
        campaign=data.campaign,
        amount=data.amount,
        channel=data.channel,
    )


@dataclass
class FunnelRow:
    group: str
    leads: int
    prospects: int
    customers: int
    lead_to_prospect: Rate
    prospect_to_customer: Rate
    lead_to_customer: Rate
    spend: float | None
    cost_per_lead: float | None
    cost_per_customer: float | None


def funnel(
    conn: Connection,
    *,
    business_id: str,
    by: str,
    campaign_spend: CampaignSpend | None = None,
) -> list[FunnelRow]:
    """Conversion between stages per source, campaign (utm_campaign), form or import,
    with cost per lead and per customer where spend is known."""
    if by not in ("source", "campaign", "form", "import"):
        raise InvalidInput([FieldProblem("by", "use source, campaign, form or import")])
    rows = conn.execute(
        select(
            leads.c.source, leads.c.utm, leads.c.form_id, leads.c.import_id, leads.c.stage
        ).where(leads.c.business_id == business_id)
    ).all()
    counts: dict[str, list[int]] = {}
    for row in rows:
        if by == "source":
            group = row.source
        elif by == "campaign":
            group = orjson.loads(row.utm).get("utm_campaign") or "(none)"
        elif by == "form":
            group = row.form_id or "(none)"
        else:
            group = row.import_id or "(none)"
        tally = counts.setdefault(group, [0, 0, 0])
        tally[0] += 1
        tally[1] += row.stage in ("prospect", "customer")
        tally[2] += row.stage == "customer"
    # Spend from the one spend model: per campaign, per lead import, or per kind of
    # import (a lead's source is the kind of import that brought it).
    spend: dict[str, float] = {}
    if by == "campaign":
        spend = spend_model.totals(conn, business_id=business_id, by="campaign")
        if campaign_spend is not None:
            for group in counts:
                found = campaign_spend(conn, business_id=business_id, campaign=group)
                if found is not None:
                    spend[group] = found
    elif by == "import":
        spend = spend_model.totals(conn, business_id=business_id, by="origin_id")
    elif by == "source":
        spend = spend_model.totals(conn, business_id=business_id, by="origin")
    report = []
    for group, (n_leads, n_prospects, n_customers) in sorted(counts.items()):
        cost = spend.get(group)
        report.append(
            FunnelRow(
                group=group,
                leads=n_leads,
                prospects=n_prospects,
                customers=n_customers,
                lead_to_prospect=rate(n_prospects, n_leads),
                prospect_to_customer=rate(n_customers, n_prospects),
                lead_to_customer=rate(n_customers, n_leads),
                spend=cost,
                cost_per_lead=cost / n_leads if cost is not None and n_leads else None,
                cost_per_customer=cost / n_customers if cost is not None and n_customers else None,
            )
        )
    return report
