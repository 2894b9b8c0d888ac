"""Consent analytics on the engine: opt-in rates per purpose and dimension, first choices.

The ledger lives in the state store; for analysis its decisions are exported into the
engine as one table with a row per (record, purpose) (`decisions`), and the reports
are Ibis expressions over it, so they run on DuckDB and Spark alike.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis
import orjson
import pyarrow as pa
from ibis.backends import BaseBackend
from sqlalchemy import Connection, select

from accord.consent.models import consent_records
from accord.engine.tables import register

DIMENSIONS = (
    "purpose",
    "notice_version",
    "variant",
    "country",
    "device",
    "day",
    "regime",
    "source",
    "choice",
)
DIMENSION_PATTERN = "^(" + "|".join(DIMENSIONS) + ")$"

DECISIONS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("position", pa.int64()),
        ("subject", pa.string()),
        ("property_id", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("purpose", pa.string()),
        ("granted", pa.bool_()),
        ("notice_version", pa.int64()),
        ("variant", pa.string()),
        ("country", pa.string()),
        ("device", pa.string()),
        ("regime", pa.string()),
        ("source", pa.string()),
    ]
)


def decisions(conn: Connection, *, business_id: str) -> pa.Table:
    """The ledger's decisions, one row per (record, purpose); `necessary` is left out.

    A subject is its userId when the record has one, else its anonymousId.
    """
    columns: dict[str, list[Any]] = {name: [] for name in DECISIONS_SCHEMA.names}
    rows = conn.execute(
        select(consent_records)
        .where(consent_records.c.business_id == business_id)
        .order_by(consent_records.c.position)
    )
    for row in rows:
        for purpose, granted in orjson.loads(row.purposes).items():
            if purpose == "necessary":
                continue
            columns["record_id"].append(row.id)
            columns["position"].append(row.position)
            columns["subject"].append(row.user_id or row.anonymous_id)
            columns["property_id"].append(row.property_id)
            columns["recorded_at"].append(row.recorded_at)
            columns["day"].append(row.recorded_at.date())
            columns["purpose"].append(purpose)
            columns["granted"].append(bool(granted))
            columns["notice_version"].append(row.notice_version)
            columns["variant"].append(row.variant)
            columns["country"].append(row.country)
            columns["device"].append(row.device)
            columns["regime"].append(row.regime)
            columns["source"].append(row.source)
    return pa.table(columns, schema=DECISIONS_SCHEMA)


def with_choice(decisions_table: Any) -> Any:
    """Adds `choice`: "first" for a subject's first decision on a purpose, else "change"."""
    order = ibis.window(
        group_by=[decisions_table.subject, decisions_table.property_id, decisions_table.purpose],
        order_by=[decisions_table.recorded_at, decisions_table.position],
    )
    rank = ibis.row_number().over(order)
    return decisions_table.mutate(
        choice=ibis.cases((rank == 0, "first"), else_="change"),
    )


def within(
    decisions_table: Any,
    *,
    start: date | None = None,
    end: date | None = None,
    property_id: str | None = None,
) -> Any:
    """The decisions made from day `start` to day `end` (both included; None: open), on
    one property when `property_id` is given."""
    table = decisions_table
    if property_id is not None:
        table = table.filter(table.property_id == property_id)
    if start is not None:
        table = table.filter(table.day >= start)
    if end is not None:
        table = table.filter(table.day <= end)
    return table


def opt_in_rates_expr(
    decisions_table: Any,
    *,
    by: str,
    start: date | None = None,
    end: date | None = None,
    property_id: str | None = None,
) -> Any:
    """Decisions, grants and opt-in rate per purpose (and per `by`, when not "purpose").

    With `start` / `end` only the decisions of those days count; `choice` still says
    whether a decision was the subject's first ever, not the first within the days.
    """
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}")
    table = within(with_choice(decisions_table), start=start, end=end, property_id=property_id)
    keys = ["purpose"] if by == "purpose" else ["purpose", by]
    return (
        table.group_by(keys)
        .aggregate(
            decisions=table.count(),
            granted=table.granted.cast("int64").sum(),
        )
        .mutate(opt_in_rate=ibis._.granted.cast("float64") / ibis._.decisions)
        .order_by(keys)
    )


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for key, value in row.items():
            if isinstance(value, date):
                row[key] = value.isoformat()
    return rows


def opt_in_rates(
    backend: BaseBackend,
    table: pa.Table,
    *,
    by: str = "purpose",
    start: date | None = None,
    end: date | None = None,
    property_id: str | None = None,
) -> list[dict[str, Any]]:
    """Plain rows of `opt_in_rates_expr` computed on the backend."""
    expr = opt_in_rates_expr(
        register(backend, table, name="consent_decisions"),
        by=by,
        start=start,
        end=end,
        property_id=property_id,
    )
    return _plain(expr.to_pyarrow().to_pylist())


def summary_expr(
    decisions_table: Any,
    *,
    start: date | None = None,
    end: date | None = None,
    property_id: str | None = None,
) -> Any:
    """One row: decisions (ledger records), choices (record and purpose), choices granted,
    and decisions that refused every purpose they were about (reject-all)."""
    table = within(decisions_table, start=start, end=end, property_id=property_id)
    per_record = table.group_by("record_id").aggregate(
        choices=table.count(), granted=table.granted.cast("int64").sum()
    )
    return per_record.aggregate(
        decisions=per_record.count(),
        choices=per_record.choices.sum(),
        granted=per_record.granted.sum(),
        reject_all=(per_record.granted == 0).cast("int64").sum(),
    )


def summary(
    backend: BaseBackend,
    table: pa.Table,
    *,
    start: date | None = None,
    end: date | None = None,
    property_id: str | None = None,
) -> dict[str, Any]:
    """`summary_expr` computed, with the overall opt-in rate and the reject-all share
    (None when there is no decision)."""
    expr = summary_expr(
        register(backend, table, name="consent_summary"),
        start=start,
        end=end,
        property_id=property_id,
    )
    row = expr.to_pyarrow().to_pylist()[0]
    decisions = int(row["decisions"] or 0)
    choices = int(row["choices"] or 0)
    granted = int(row["granted"] or 0)
    reject_all = int(row["reject_all"] or 0)
    return {
        "decisions": decisions,
        "choices": choices,
        "granted": granted,
        "opt_in_rate": granted / choices if choices else None,
        "reject_all": reject_all,
        "reject_all_share": reject_all / decisions if decisions else None,
    }


def decisions_per_day_expr(decisions_table: Any) -> Any:
    """Ledger records per day and source."""
    return (
        decisions_table.group_by(["day", "source"])
        .aggregate(decisions=decisions_table.record_id.nunique())
        .order_by(["day", "source"])
    )


def decisions_per_day(backend: BaseBackend, table: pa.Table) -> list[dict[str, Any]]:
    expr = decisions_per_day_expr(register(backend, table, name="consent_per_day"))
    return _plain(expr.to_pyarrow().to_pylist())
