"""Event volume: how many events of each type each source sent each day."""

from __future__ import annotations

from typing import Any

import ibis


def events_per_type_per_day(events: Any, *, business_id: str | None = None) -> Any:
    """An Ibis expression: one row per (day, source, type) with its event count."""
    if business_id is not None:
        events = events.filter(events.business_id == business_id)
    return (
        events.group_by(["business_id", "day", "source_id", "type"])
        .aggregate(events=ibis._.count())
        .order_by(["business_id", "day", "source_id", "type"])
    )
