"""Event volume: how many events of each type each source sent each day."""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis


def events_per_type_per_day(
    events: Any,
    *,
    business_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    source_id: str | None = None,
) -> Any:
    """An Ibis expression: one row per (day, source, type) with its event count.

    `since` and `until` bound the UTC day, both included; `source_id` keeps one source.
    The day is a partition column, so both engines skip the other days' files.
    """
    if business_id is not None:
        events = events.filter(events.business_id == business_id)
    if since is not None:
        events = events.filter(events.day >= since)
    if until is not None:
        events = events.filter(events.day <= until)
    if source_id is not None:
        events = events.filter(events.source_id == source_id)
    return (
        events.group_by(["business_id", "day", "source_id", "type"])
        .aggregate(events=ibis._.count())
        .order_by(["business_id", "day", "source_id", "type"])
    )
