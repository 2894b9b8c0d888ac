"""Analytics entry points: run report expressions on the configured engine."""

from __future__ import annotations

from datetime import date
from typing import Any

from accord.analytics.volume import events_per_type_per_day
from accord.engine.connection import connect
from accord.engine.lake import events


def volume(*, engine_url: str, lake_url: str, business_id: str | None) -> list[dict[str, Any]]:
    """Events per day, source and type, as plain rows."""
    backend = connect(engine_url)
    table = events_per_type_per_day(
        events(backend, lake_url, business_id=business_id), business_id=business_id
    )
    rows: list[dict[str, Any]] = table.to_pyarrow().to_pylist()
    for row in rows:
        if isinstance(row["day"], date):
            row["day"] = row["day"].isoformat()
    return rows
