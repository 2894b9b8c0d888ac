"""Analytics entry points: run report expressions on the configured engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol

import pyarrow as pa
from ibis.backends import BaseBackend
from sqlalchemy import Connection

from accord.accounts.service import campaign_names
from accord.analytics import funnels, paths, retention, spend
from accord.analytics.attribution import AttributionSpec, attribution_table
from accord.analytics.attribution import check as check_attribution
from accord.analytics.channels import CHANNELS
from accord.analytics.people import EventSource, identifier_table, source_on, trait_table
from accord.analytics.volume import events_per_type_per_day
from accord.audiences.compile import IDENTIFIER_SCHEMA
from accord.audiences.computed import reads_computed, with_computed
from accord.audiences.conditions import TraitType
from accord.audiences.definitions import catalog
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.connection import connect
from accord.engine.lake import events
from accord.engine.tables import register
from accord.profiles.service import identifier_rows, profile_rows
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
    backend: BaseBackend,
    conn: Connection,
    *,
    lake_url: str,
    business_id: str,
    trait: str | None = None,
    now: datetime | None = None,
) -> EventSource:
    """A business's lake events and its identifiers (from the state store) on the engine,
    with the values of one profile trait when a funnel is broken down by it."""
    values = None
    if trait is not None:
        values = trait_values(conn, business_id=business_id, name=trait, now=now or utcnow())
    return source_on(
        backend,
        events(backend, lake_url, business_id=business_id),
        identifier_table(identifier_rows(conn, business_id=business_id)),
        values,
    )


def trait_type(conn: Connection, *, business_id: str, name: str) -> TraitType:
    """The type audiences give a trait; 400 naming `breakdown_trait` for one the business's
    catalog does not know."""
    kind = catalog(conn, business_id=business_id).traits.get(name)
    if kind is None:
        raise InvalidInput([FieldProblem("breakdown_trait", f"unknown trait {name!r}")])
    return kind


def trait_values(conn: Connection, *, business_id: str, name: str, now: datetime) -> pa.Table:
    """profile_id, value: a trait of every profile, typed as audiences type it (the
    business's catalog; computed traits as at `now`); 400 naming `breakdown_trait` for a
    trait the catalog does not know."""
    kind = trait_type(conn, business_id=business_id, name=name)
    computed = reads_computed([name])
    rows = profile_rows(conn, business_id=business_id, computed=computed)
    if computed:
        rows = [replace(r, traits=with_computed(r.traits, r.computed, now)) for r in rows]
    return trait_table(((r.id, r.traits, r.first_seen, r.last_seen) for r in rows), name, kind)


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
    """One funnel, path or retention report from its JSON spec, as its JSON result."""
    return report_on(
        kind,
        data,
        store=store,
        backend=connect(engine_url),
        lake_url=lake_url,
        business_id=business_id,
        now=now,
    )


def report_on(
    kind: str,
    data: Any,
    *,
    store: Store,
    backend: BaseBackend,
    lake_url: str,
    business_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`run_report` on a backend already connected (a saved report's refresh, in
    `analytics.reports`, stores `kind` and `data` and calls this again)."""
    report = REPORTS[kind]
    spec = report.parse(data)
    at = now or utcnow()
    with store.read() as conn:
        source = event_source(
            backend,
            conn,
            lake_url=lake_url,
            business_id=business_id,
            trait=getattr(spec, "breakdown_trait", None),
            now=at,
        )
    return report.run(source, spec, now=at).to_json()


def funnel_people(
    data: Any,
    step: int,
    *,
    store: Store,
    engine_url: str,
    lake_url: str,
    business_id: str,
    now: datetime | None = None,
    dropped: bool = False,
) -> list[str]:
    """The profile ids reaching at least step `step` (1-based) of a funnel; with
    `dropped`, those whose furthest step it is."""
    spec = funnels.parse_spec(data)
    backend = connect(engine_url)
    at = now or utcnow()
    with store.read() as conn:
        source = event_source(
            backend,
            conn,
            lake_url=lake_url,
            business_id=business_id,
            trait=spec.breakdown_trait,
            now=at,
        )
    return funnels.people_at(source, spec, step, now=at, dropped=dropped)


# -- attribution and acquisition cost --------------------------------------------------


def attribution(
    conn: Connection,
    *,
    backend: BaseBackend,
    lake_url: str,
    business_id: str,
    spec: AttributionSpec,
) -> dict[str, Any]:
    """Conversions, acquisitions and revenue credited to each channel and campaign by the
    spec's model, beside what each cost in the range (the spend model) and the cost per
    acquired customer; `channels` adds the rows up per channel."""
    check_attribution(spec)
    identifiers = identifier_rows(conn, business_id=business_id)
    lines = spend.stored(conn, business_id=business_id, since=spec.from_, until=spec.to)
    lines += spend.ad_log_lines(
        backend,
        lake_url,
        business_id=business_id,
        since=spec.from_,
        until=spec.to,
        campaign_names=campaign_names(conn, business_id=business_id),
    )
    table = attribution_table(
        events(backend, lake_url, business_id=business_id),
        register(
            backend,
            pa.Table.from_pydict(
                {
                    "kind": [kind for _, kind, _ in identifiers],
                    "value": [value for _, _, value in identifiers],
                    "profile_id": [pid for pid, _, _ in identifiers],
                },
                schema=IDENTIFIER_SCHEMA,
            ),
        ),
        spec,
    )
    credited = {(r["channel"], r["campaign"]): r for r in backend.to_pyarrow(table).to_pylist()}
    costs = spend.by_channel_and_campaign(lines)
    rows = [
        _cost_row(
            channel,
            campaign,
            credited.get((channel, campaign), {}),
            costs.get((channel, campaign)),
        )
        for channel, campaign in sorted(set(credited) | set(costs))
    ]
    per_channel: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = per_channel.setdefault(
            row["channel"],
            {"conversions": 0.0, "new_customers": 0.0, "revenue": 0.0, "spend": None},
        )
        for column in ("conversions", "new_customers", "revenue"):
            total[column] += row[column]
        if row["spend"] is not None:
            total["spend"] = (total["spend"] or 0.0) + row["spend"]
    channel_rows = [
        _cost_row(channel, None, values, values["spend"])
        for channel, values in sorted(per_channel.items(), key=lambda item: CHANNELS.index(item[0]))
    ]
    return {
        "spec": spec.model_dump(mode="json", by_alias=True),
        "rows": rows,
        "channels": channel_rows,
        "totals": {
            "conversions": sum(r["conversions"] for r in rows),
            "new_customers": sum(r["new_customers"] for r in rows),
            "revenue": sum(r["revenue"] for r in rows),
            "spend": sum(line.amount for line in lines),
        },
    }


def _cost_row(
    channel: str, campaign: str | None, credit: dict[str, Any], cost: float | None
) -> dict[str, Any]:
    conversions = float(credit.get("conversions") or 0.0)
    acquired = float(credit.get("new_customers") or 0.0)
    row: dict[str, Any] = {"channel": channel}
    if campaign is not None:
        row["campaign"] = campaign
    row.update(
        conversions=round(conversions, 6),
        new_customers=round(acquired, 6),
        revenue=round(float(credit.get("revenue") or 0.0), 6),
        spend=cost,
        # Spend over the customers it won (none: no spend known, or nobody acquired).
        cost_per_acquisition=round(cost / acquired, 6) if cost is not None and acquired else None,
    )
    return row
