"""The one spend model: what marketing cost, per day, channel and campaign.

Three sources feed it: manual entries (`POST /api/analytics/spend`, `/analytics/spend`),
lead imports with a spend (Lead Ads exports, CSV) and the leads funnel's campaign costs,
all stored as `spend_entries`; and the ad-account campaigns' spend lines in their ad
logs, read on the engine. Attribution's cost per acquired customer and the leads funnel's
cost per lead both read it here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ibis.backends import BaseBackend
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Connection, delete, func, select

from accord.analytics.channels import CHANNELS, NO_CAMPAIGN
from accord.analytics.models import spend_entries
from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.engine.lake import dataset
from accord.experiments.adlogs import AD_LOGS

# Channels spend can go to (direct traffic costs nothing).
SPEND_CHANNELS = tuple(c for c in CHANNELS if c != "direct")
# Ad logs are programmatic display (OpenRTB bids and impressions).
AD_LOG_CHANNEL = "display"
Origin = Literal["manual", "leads", "lead_ads", "csv", "ad_logs"]
# What a lead import of each kind is bought through.
IMPORT_CHANNELS = {"lead_ads": "paid social", "csv": "other"}


class SpendIn(BaseModel):
    """One manual spend entry."""

    day: date
    channel: str = Field(description=f"one of: {', '.join(SPEND_CHANNELS)}")
    campaign: str = Field(NO_CAMPAIGN, min_length=1, max_length=200)
    amount: float = Field(ge=0, le=1e12, allow_inf_nan=False)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        if value not in SPEND_CHANNELS:
            raise ValueError(f"unknown channel; use one of: {', '.join(SPEND_CHANNELS)}")
        return value

    @field_validator("campaign")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


@dataclass(frozen=True)
class SpendLine:
    day: date
    channel: str
    campaign: str
    amount: float
    origin: str
    id: str | None = None  # stored entries only
    origin_id: str | None = None


def add_entry(
    conn: Connection,
    *,
    business_id: str,
    data: SpendIn,
    origin: Origin = "manual",
    origin_id: str | None = None,
) -> str:
    entry_id = new_id("spd")
    conn.execute(
        spend_entries.insert().values(
            id=entry_id,
            business_id=business_id,
            day=data.day,
            channel=data.channel,
            campaign=data.campaign,
            amount=data.amount,
            origin=origin,
            origin_id=origin_id,
            created_at=utcnow(),
        )
    )
    return entry_id


def delete_entry(conn: Connection, *, business_id: str, entry_id: str) -> None:
    """Remove a manual entry (imports' and the leads funnel's rows follow their source)."""
    done = conn.execute(
        delete(spend_entries).where(
            spend_entries.c.business_id == business_id,
            spend_entries.c.id == entry_id,
            spend_entries.c.origin == "manual",
        )
    )
    if not done.rowcount:
        raise NotFound(f"manual spend entry {entry_id}")


def set_campaign_total(
    conn: Connection, *, business_id: str, campaign: str, amount: float, channel: str
) -> None:
    """What the leads funnel says a campaign cost in all: one entry, dated today, in place
    of the one it wrote before."""
    conn.execute(
        delete(spend_entries).where(
            spend_entries.c.business_id == business_id,
            spend_entries.c.origin == "leads",
            spend_entries.c.campaign == campaign,
        )
    )
    data = SpendIn(day=utcnow().date(), channel=channel, campaign=campaign, amount=amount)
    add_entry(conn, business_id=business_id, data=data, origin="leads")


def record_import(
    conn: Connection, *, business_id: str, import_id: str, kind: str, name: str, amount: float
) -> None:
    """A lead import's spend, as the campaign named after the import."""
    data = SpendIn(
        day=utcnow().date(),
        channel=IMPORT_CHANNELS.get(kind, "other"),
        campaign=name,
        amount=amount,
    )
    origin: Origin = "lead_ads" if kind == "lead_ads" else "csv"
    add_entry(conn, business_id=business_id, data=data, origin=origin, origin_id=import_id)


def stored(
    conn: Connection,
    *,
    business_id: str,
    since: date | None = None,
    until: date | None = None,
) -> list[SpendLine]:
    """The stored entries, by day (`since` and `until` included when given)."""
    query = select(spend_entries).where(spend_entries.c.business_id == business_id)
    if since is not None:
        query = query.where(spend_entries.c.day >= since)
    if until is not None:
        query = query.where(spend_entries.c.day <= until)
    rows = conn.execute(query.order_by(spend_entries.c.day, spend_entries.c.id)).all()
    return [
        SpendLine(
            day=r.day,
            channel=r.channel,
            campaign=r.campaign,
            amount=r.amount,
            origin=r.origin,
            id=r.id,
            origin_id=r.origin_id,
        )
        for r in rows
    ]


Key = Literal["campaign", "origin_id", "origin"]


def totals(conn: Connection, *, business_id: str, by: Key) -> dict[str, float]:
    """Stored spend of all days added up per campaign, lead import or origin: the leads
    funnel's cost per lead and per customer."""
    column = spend_entries.c[by]
    rows = conn.execute(
        select(column, func.sum(spend_entries.c.amount))
        .where(spend_entries.c.business_id == business_id, column.is_not(None))
        .group_by(column)
    ).all()
    return {str(key): float(amount) for key, amount in rows}


def ad_log_lines(
    backend: BaseBackend,
    lake_url: str,
    *,
    business_id: str,
    since: date,
    until: date,
    campaign_names: dict[str, str],
) -> list[SpendLine]:
    """The ad-account campaigns' spend from their ad logs, per day and campaign (named as
    the campaign is, its id when no campaign has it)."""
    logs = dataset(backend, lake_url, AD_LOGS, business_id=business_id)
    spent = logs.filter(logs.spend.notnull() & (logs.day >= since) & (logs.day <= until))
    per_day = spent.group_by([spent.day, spent.campaign_id]).aggregate(amount=spent.spend.sum())
    rows: list[dict[str, Any]] = backend.to_pyarrow(per_day).to_pylist()
    return sorted(
        (
            SpendLine(
                day=row["day"],
                channel=AD_LOG_CHANNEL,
                campaign=campaign_names.get(row["campaign_id"] or "", row["campaign_id"])
                or NO_CAMPAIGN,
                amount=float(row["amount"]),
                origin="ad_logs",
            )
            for row in rows
        ),
        key=lambda line: (line.day, line.campaign),
    )


def by_channel_and_campaign(lines: Iterable[SpendLine]) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for line in lines:
        key = (line.channel, line.campaign)
        found[key] = found.get(key, 0.0) + line.amount
    return found
