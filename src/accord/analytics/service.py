"""Analytics entry points: run report expressions on the configured engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from ibis.backends import BaseBackend
from sqlalchemy import Connection

from accord.analytics import funnels, paths, retention
from accord.analytics.people import EventSource, identifier_table, source_on
from accord.analytics.volume import events_per_type_per_day
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.connection import connect
from accord.engine.lake import events
from accord.profiles.service import identifier_rows
from accord.store.db import Store


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


# Funnels, paths and retention --------------------------------------------------------


class Report(Protocol):
    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReportKind:
    """One report: its spec parser (400 on bad input) and its engine run."""

    parse: Callable[[Any], Any]
    run: Callable[..., Report]


REPORTS: dict[str, ReportKind] = {
    "funnels": ReportKind(funnels.parse_spec, funnels.run),
    "paths": ReportKind(paths.parse_spec, paths.run),
    "retention": ReportKind(retention.parse_spec, retention.run),
}


def event_source(
    backend: BaseBackend, conn: Connection, *, lake_url: str, business_id: str
) -> EventSource:
    """A business's lake events and its identifiers (from the state store) on the engine."""
    return source_on(
        backend,
        events(backend, lake_url, business_id=business_id),
        identifier_table(identifier_rows(conn, business_id=business_id)),
    )


def run_report(
    kind: str,
    data: Any,
    *,
    store: Store,
    engine_url: str,
    lake_url: str,
    business_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One funnel, path or retention report from its JSON spec, as its JSON result.

    A saved report stores `kind` and `data` and calls this again to refresh."""
    report = REPORTS[kind]
    spec = report.parse(data)
    backend = connect(engine_url)
    with store.read() as conn:
        source = event_source(backend, conn, lake_url=lake_url, business_id=business_id)
    return report.run(source, spec, now=now or utcnow()).to_json()


def funnel_people(
    data: Any,
    step: int,
    *,
    store: Store,
    engine_url: str,
    lake_url: str,
    business_id: str,
    now: datetime | None = None,
) -> list[str]:
    """The profile ids reaching at least step `step` (1-based) of a funnel."""
    spec = funnels.parse_spec(data)
    backend = connect(engine_url)
    with store.read() as conn:
        source = event_source(backend, conn, lake_url=lake_url, business_id=business_id)
    return funnels.people_at(source, spec, step, now=now or utcnow())
