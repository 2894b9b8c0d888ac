"""Export of the subjects whose current choice grants a purpose, as CSV for CRM tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Connection, select

from accord.consent.ledger import instant_text
from accord.consent.models import consent_records
from accord.core.csvfile import csv_lines

CSV_COLUMNS = (
    "identifier_kind",
    "identifier",
    "granted_at",
    "source",
    "notice_version",
    "record_id",
)


def subjects_granting(
    conn: Connection, *, business_id: str, purpose: str, chunk: int = 5000
) -> list[dict[str, Any]]:
    """Each identifier (userId or anonymousId) whose newest choice about `purpose` is yes.

    Reads the ledger in chain order; a record naming both a userId and an anonymousId
    speaks for both. Ordered by identifier kind and value.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    last = 0
    while True:
        rows = conn.execute(
            select(
                consent_records.c.position,
                consent_records.c.id,
                consent_records.c.anonymous_id,
                consent_records.c.user_id,
                consent_records.c.purposes,
                consent_records.c.recorded_at,
                consent_records.c.source,
                consent_records.c.notice_version,
            )
            .where(consent_records.c.business_id == business_id, consent_records.c.position > last)
            .order_by(consent_records.c.position)
            .limit(chunk)
        ).all()
        if not rows:
            break
        last = rows[-1].position
        for row in rows:
            choices = orjson.loads(row.purposes)
            if purpose not in choices:
                continue
            entry = {
                "granted": bool(choices[purpose]),
                "recorded_at": row.recorded_at,
                "granted_at": instant_text(row.recorded_at),
                "source": row.source,
                "notice_version": row.notice_version,
                "record_id": row.id,
            }
            for kind, value in (("user_id", row.user_id), ("anonymous_id", row.anonymous_id)):
                if value:
                    known = latest.get((kind, value))
                    # The newest decision wins, by its own time and then chain order.
                    if known is None or known["recorded_at"] <= row.recorded_at:
                        latest[(kind, value)] = entry
    return [
        {"identifier_kind": kind, "identifier": value, **entry}
        for (kind, value), entry in sorted(latest.items())
        if entry["granted"]
    ]


def to_csv(rows: list[dict[str, Any]]) -> Iterator[str]:
    """CSV text, header first, one identifier per line."""
    return csv_lines(CSV_COLUMNS, rows)
