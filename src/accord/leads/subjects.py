"""Subject rights over leads: a person's leads found, exported and erased."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from accord.leads.models import (
    coupons,
    lead_consents,
    lead_stage_changes,
    leads,
)


def _leads_of(
    conn: Connection, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> list[Any]:
    matches = [
        column.in_(list(values))
        for column, values in ((leads.c.email, emails), (leads.c.anonymous_id, anonymous_ids))
        if values
    ]
    if not matches:
        return []
    return list(
        conn.execute(
            select(leads)
            .where(leads.c.business_id == business_id, or_(*matches))
            .order_by(leads.c.created_at, leads.c.id)
        )
    )


def _rows_of_leads(conn: Connection, table: Any, lead_ids: list[str]) -> list[dict[str, Any]]:
    if not lead_ids:
        return []
    rows = conn.execute(select(table).where(table.c.lead_id.in_(lead_ids)))
    return [dict(r._mapping) for r in rows]


def subject_history(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """A person's leads with their consents (double opt-in), stage history and coupons."""
    found = _leads_of(conn, business_id, emails, anonymous_ids)
    ids = [row.id for row in found]
    return {
        "leads": [dict(row._mapping) for row in found],
        "consents": _rows_of_leads(conn, lead_consents, ids),
        "stage_changes": sorted(
            _rows_of_leads(conn, lead_stage_changes, ids), key=lambda r: r["id"]
        ),
        "coupons": _rows_of_leads(conn, coupons, ids),
    }


def anonymous_ids_of_email(conn: Connection, *, business_id: str, email: str) -> list[str]:
    """The anonymous ids a lead form recorded consent under for this address, oldest
    lead first: the consent ledger knows a lead by its anonymous id, never its email."""
    return [
        str(row.anonymous_id)
        for row in _leads_of(conn, business_id, [email.strip().lower()], [])
        if row.anonymous_id
    ]


def subject_emails(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> list[str]:
    """The addresses of a person's leads: a lead found by its anonymous id may have been
    given an address that is none of the person's identifiers."""
    return [str(row.email) for row in _leads_of(conn, business_id, emails, anonymous_ids)]


def erase_subject(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> dict[str, int]:
    """Delete a person's leads with their consent copies and stage history; a coupon
    they were given stays used (unassigned from them) so its code is not handed out again.
    The proof of consent stays in the consent ledger, where double opt-in recorded it."""
    ids = [row.id for row in _leads_of(conn, business_id, emails, anonymous_ids)]
    if not ids:
        return {"leads": 0, "lead_consents": 0, "lead_stage_changes": 0, "coupons_unassigned": 0}
    consents = conn.execute(delete(lead_consents).where(lead_consents.c.lead_id.in_(ids)))
    stages = conn.execute(delete(lead_stage_changes).where(lead_stage_changes.c.lead_id.in_(ids)))
    unassigned = conn.execute(
        update(coupons).where(coupons.c.lead_id.in_(ids)).values(lead_id=None)
    )
    conn.execute(delete(leads).where(leads.c.id.in_(ids)))
    return {
        "leads": len(ids),
        "lead_consents": max(consents.rowcount, 0),
        "lead_stage_changes": max(stages.rowcount, 0),
        "coupons_unassigned": max(unassigned.rowcount, 0),
    }
