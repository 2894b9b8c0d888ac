"""Analytics entry points: run report expressions on the configured engine."""

from __future__ import annotations

from datetime import date
from typing import Any

from accord.analytics.volume import events_per_type_per_day
from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.connection import connect
from accord.engine.lake import events


def check_range(since: date | None, until: date | None) -> None:
    """Refuse a day range that ends before it starts."""
    if since is not None and until is not None and since > until:
        raise InvalidInput([FieldProblem("until", "must be on or after since")])


def volume(
    *,
    engine_url: str,
    lake_url: str,
    business_id: str | None,
    since: date | None = None,
    until: date | None = None,
    source_id: str | None = None,
) -> list[dict[str, Any]]:
    """Events per day, source and type, as plain rows (days from `since` to `until`,
    both included, and one source when `source_id` is given)."""
    check_range(since, until)
    backend = connect(engine_url)
    table = events_per_type_per_day(
        events(backend, lake_url, business_id=business_id),
        business_id=business_id,
        since=since,
        until=until,
        source_id=source_id,
    )
    rows: list[dict[str, Any]] = table.to_pyarrow().to_pylist()
    for row in rows:
        if isinstance(row["day"], date):
            row["day"] = row["day"].isoformat()
    return rows
