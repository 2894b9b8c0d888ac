"""Erasing a person from audiences, their webhook dead letters included."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update

from accord.audiences.models import (
    audience_changes,
    audience_members,
    audience_webhook_dead_letters,
)
from accord.core.clock import utcnow


def forget_profile(conn: Connection, *, business_id: str, profile_id: str) -> dict[str, int]:
    """Erase a person from audiences, in the caller's transaction: their memberships and
    change history go, and every audience they were ever in gets one `erased` change, which
    webhook destinations receive like entries and exits. Their entries and exits are
    taken out of the batches webhook dead letters keep."""
    touched = set(
        conn.execute(
            select(audience_members.c.audience_id).where(
                audience_members.c.business_id == business_id,
                audience_members.c.profile_id == profile_id,
            )
        ).scalars()
    ) | set(
        conn.execute(
            select(audience_changes.c.audience_id).where(
                audience_changes.c.business_id == business_id,
                audience_changes.c.profile_id == profile_id,
            )
        ).scalars()
    )
    members = conn.execute(
        delete(audience_members).where(
            audience_members.c.business_id == business_id,
            audience_members.c.profile_id == profile_id,
        )
    ).rowcount
    # The notices go in before the history goes out: SQLite hands the numbers of deleted
    # newest rows out again, which would put a notice at or before a change destinations
    # received already (their `delivered_seq`), and it would never be sent.
    replaced = conn.execute(select(func.max(audience_changes.c.seq))).scalar() or 0
    now = utcnow()
    if touched:
        conn.execute(
            insert(audience_changes),
            [
                {
                    "business_id": business_id,
                    "audience_id": audience_id,
                    "profile_id": profile_id,
                    "change": "erased",
                    "origin": "erasure",
                    "at": now,
                }
                for audience_id in sorted(touched)
            ],
        )
    history = conn.execute(
        delete(audience_changes).where(
            audience_changes.c.business_id == business_id,
            audience_changes.c.profile_id == profile_id,
            audience_changes.c.seq <= replaced,
        )
    ).rowcount
    return {
        "audience_members": max(members, 0),
        "audience_changes": max(history, 0),
        "audience_webhook_dead_letters_scrubbed": _scrub_dead_letters(
            conn, business_id=business_id, profile_id=profile_id
        ),
        "erasure_notices": len(touched),
    }


def _scrub_dead_letters(conn: Connection, *, business_id: str, profile_id: str) -> int:
    """Take an erased person's entries and exits out of the batches dead letters keep;
    their erasure notices stay, they are what the receiver must still be told."""
    letters = audience_webhook_dead_letters
    rows = conn.execute(
        select(letters.c.id, letters.c.body).where(
            letters.c.business_id == business_id,
            letters.c.body.contains(profile_id, autoescape=True),
        )
    ).all()
    scrubbed = 0
    for row in rows:
        body = orjson.loads(row.body)
        kept = [
            change
            for change in body["changes"]
            if change["profile_id"] != profile_id or change["change"] == "erased"
        ]
        if len(kept) == len(body["changes"]):
            continue
        body["changes"] = kept
        conn.execute(
            update(letters).where(letters.c.id == row.id).values(body=orjson.dumps(body).decode())
        )
        scrubbed += 1
    return scrubbed
