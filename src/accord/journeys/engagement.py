"""Engagement history for smart timing and channel choice.

The clock of a person's engagement: their journey conversions (the moments of their goal
events) and the email they opened or clicked, as the `Email Opened` and `Email Link
Clicked` track events of their profile, sent live or imported from another email tool.
A converted journey pass credits the channels of the messages it delivered. Other
contexts can offer richer history through the same `Engagement` protocol.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, func, select

from accord.core.clock import utcnow
from accord.journeys.models import journey_outbox, journey_runs, journey_steps
from accord.journeys.smart import ChannelStats, hourly_counts
from accord.profiles import service as profiles

HISTORY = timedelta(days=180)
# Track events (Segment's email spec) that place an engagement on the clock.
ENGAGEMENT_EVENTS = ("Email Opened", "Email Link Clicked")
POPULATION_TTL_SECONDS = 600.0
# At most this many conversions, and as many opens and clicks, per count of hours.
MAX_MOMENTS = 100_000


class Engagement(Protocol):
    def personal_hours(
        self, conn: Connection, *, business_id: str, profile_id: str, zone: ZoneInfo
    ) -> list[float]: ...

    def population_hours(self, conn: Connection, *, business_id: str) -> list[float]: ...

    def personal_channels(
        self, conn: Connection, *, business_id: str, profile_id: str
    ) -> dict[str, ChannelStats]: ...

    def population_channels(
        self, conn: Connection, *, business_id: str
    ) -> dict[str, ChannelStats]: ...


class JourneyEngagement:
    """Engagement read from journey steps and the outbox; business-wide figures are
    cached for ten minutes per business."""

    def __init__(self) -> None:
        self._hours: dict[str, tuple[float, list[float]]] = {}
        self._channels: dict[str, tuple[float, dict[str, ChannelStats]]] = {}

    def _moments(
        self, conn: Connection, business_id: str, profile_id: str | None
    ) -> list[datetime]:
        since = utcnow() - HISTORY
        query = select(journey_steps.c.at).where(
            journey_steps.c.business_id == business_id,
            journey_steps.c.outcome == "converted",
            journey_steps.c.at >= since,
        )
        if profile_id is not None:
            query = query.where(journey_steps.c.profile_id == profile_id)
        conversions = list(conn.execute(query.limit(MAX_MOMENTS)).scalars())
        opens = profiles.track_times(
            conn,
            business_id=business_id,
            events=ENGAGEMENT_EVENTS,
            since=since,
            profile_id=profile_id,
            limit=MAX_MOMENTS,
        )
        return conversions + opens

    def personal_hours(
        self, conn: Connection, *, business_id: str, profile_id: str, zone: ZoneInfo
    ) -> list[float]:
        return hourly_counts(self._moments(conn, business_id, profile_id), zone)

    def population_hours(self, conn: Connection, *, business_id: str) -> list[float]:
        cached = self._hours.get(business_id)
        if cached and time.monotonic() - cached[0] < POPULATION_TTL_SECONDS:
            return cached[1]
        # Business-wide, hours are counted in UTC: people's zones differ, and the prior
        # only has to be roughly right.
        counts = hourly_counts(self._moments(conn, business_id, None), ZoneInfo("UTC"))
        self._hours[business_id] = (time.monotonic(), counts)
        return counts

    def _stats(
        self, conn: Connection, business_id: str, profile_id: str | None
    ) -> dict[str, ChannelStats]:
        out, runs = journey_outbox.c, journey_runs.c
        query = (
            select(
                out.channel,
                func.count().label("sends"),
                func.sum(case((runs.status == "converted", 1), else_=0)).label("responses"),
            )
            .select_from(journey_outbox.join(journey_runs, runs.id == out.run_id))
            .where(
                out.business_id == business_id,
                out.status == "sent",
                out.created_at >= utcnow() - HISTORY,
            )
            .group_by(out.channel)
        )
        if profile_id is not None:
            query = query.where(out.profile_id == profile_id)
        return {
            row.channel: ChannelStats(int(row.sends), int(row.responses or 0))
            for row in conn.execute(query)
        }

    def personal_channels(
        self, conn: Connection, *, business_id: str, profile_id: str
    ) -> dict[str, ChannelStats]:
        return self._stats(conn, business_id, profile_id)

    def population_channels(self, conn: Connection, *, business_id: str) -> dict[str, ChannelStats]:
        cached = self._channels.get(business_id)
        if cached and time.monotonic() - cached[0] < POPULATION_TTL_SECONDS:
            return cached[1]
        stats = self._stats(conn, business_id, None)
        self._channels[business_id] = (time.monotonic(), stats)
        return stats
