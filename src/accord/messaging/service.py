"""Email suppression, the send-time check, and a person's email history for subject rights."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, or_, select, update

from accord.core.clock import utcnow
from accord.identity.service import normalise_email
from accord.messaging.models import (
    email_events,
    email_list_members,
    email_lists,
    email_messages,
    email_suppressions,
)
from accord.messaging.ports import Recipient, Wiring

# Suppression and send-time checks ------------------------------------------------------


def suppress_email(
    conn: Connection, *, business_id: str, email: str, reason: str, wiring: Wiring | None = None
) -> None:
    email = normalise_email(email)
    exists = conn.execute(
        select(email_suppressions.c.reason).where(
            email_suppressions.c.business_id == business_id, email_suppressions.c.email == email
        )
    ).first()
    if exists is None:
        conn.execute(
            email_suppressions.insert().values(
                business_id=business_id, email=email, reason=reason, created_at=utcnow()
            )
        )
    if wiring is not None and wiring.suppress is not None:
        wiring.suppress(conn, business_id=business_id, identifier=email, reason=reason)


def suppressed(conn: Connection, *, business_id: str, emails: Sequence[str]) -> dict[str, str]:
    """Email → reason, for those on this business's own suppression list (kept as the
    address, or only as its hash once the person was erased)."""
    found: dict[str, str] = {}
    for start in range(0, len(emails), 500):
        chunk = list(emails[start : start + 500])
        hashed = {suppression_hash(business_id, e): e for e in chunk}
        rows = conn.execute(
            select(email_suppressions.c.email, email_suppressions.c.reason).where(
                email_suppressions.c.business_id == business_id,
                email_suppressions.c.email.in_([*chunk, *hashed]),
            )
        ).all()
        found.update({hashed.get(row.email, row.email): row.reason for row in rows})
    return found


HASHED_PREFIX = "sha256:"


def suppression_hash(business_id: str, email: str) -> str:
    """How an erased person's suppressed address is kept: salted with the business id
    so the same address hashes differently per business, and normalised first."""
    digest = hashlib.sha256(f"{business_id}\x1femail\x1f{normalise_email(email)}".encode())
    return HASHED_PREFIX + digest.hexdigest()


# Subject rights -------------------------------------------------------------------------


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _of_person(
    table: Table,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> ColumnElement[bool] | None:
    """The business's rows of `table` naming the person by any identifier; None: no identifier."""
    matches = [
        table.c[name].in_(values)
        for name, values in (
            ("email", emails),
            ("anonymous_id", anonymous_ids),
            ("user_id", user_ids),
        )
        if values
    ]
    return and_(table.c.business_id == business_id, or_(*matches)) if matches else None


def _messages_of(
    conn: Connection,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> list[Any]:
    where = _of_person(email_messages, business_id, emails, anonymous_ids, user_ids)
    if where is None:
        return []
    return list(
        conn.execute(
            select(email_messages)
            .where(where)
            .order_by(email_messages.c.created_at, email_messages.c.id)
        )
    )


def _members_of(
    conn: Connection,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> list[Any]:
    where = _of_person(email_list_members, business_id, emails, anonymous_ids, user_ids)
    if where is None:
        return []
    return list(
        conn.execute(
            select(email_list_members, email_lists.c.name.label("list_name"))
            .join(email_lists, email_lists.c.id == email_list_members.c.list_id)
            .where(where)
            .order_by(email_list_members.c.added_at)
        )
    )


def subject_history(
    conn: Connection,
    *,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str] = (),
    user_ids: Sequence[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """A person's email history: messages, their events, suppressions and list memberships."""
    messages = _messages_of(conn, business_id, emails, anonymous_ids, user_ids)
    ids = [m.id for m in messages]
    events = []
    for start in range(0, len(ids), 500):
        events += list(
            conn.execute(
                select(email_events)
                .where(email_events.c.message_id.in_(ids[start : start + 500]))
                .order_by(email_events.c.occurred_at, email_events.c.id)
            )
        )
    suppressions = conn.execute(
        select(email_suppressions).where(
            email_suppressions.c.business_id == business_id,
            email_suppressions.c.email.in_(list(emails)),
        )
    ).all()
    return {
        "messages": [_plain(m) for m in messages],
        "events": [_plain(e) for e in events],
        "suppressions": [_plain(r) for r in suppressions],
        "list_memberships": [
            _plain(r) for r in _members_of(conn, business_id, emails, anonymous_ids, user_ids)
        ],
    }


def erase_subject(
    conn: Connection,
    *,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str] = (),
    user_ids: Sequence[str] = (),
) -> dict[str, int]:
    """Erase a person from email: list memberships deleted; messages and their events
    anonymised (campaign statistics keep their counts, nothing names the person);
    suppressions kept only as `suppression_hash`, so the address stays suppressed."""
    messages = _messages_of(conn, business_id, emails, anonymous_ids, user_ids)
    ids = [m.id for m in messages]
    events = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(
            update(email_messages)
            .where(email_messages.c.id.in_(chunk))
            # A placeholder unique per message keeps (campaign, email) unique.
            .values(
                email="erased:" + email_messages.c.id,
                anonymous_id=None,
                user_id=None,
                subject="(erased)",
                links="[]",
            )
        )
        events += conn.execute(
            update(email_events)
            .where(email_events.c.message_id.in_(chunk))
            .values(detail=None, user_agent=None, ip=None)
        ).rowcount
    members = _members_of(conn, business_id, emails, anonymous_ids, user_ids)
    for row in members:
        conn.execute(
            email_list_members.delete().where(
                email_list_members.c.list_id == row.list_id,
                email_list_members.c.email == row.email,
            )
        )
    hashed = 0
    rows = conn.execute(
        select(email_suppressions).where(
            email_suppressions.c.business_id == business_id,
            email_suppressions.c.email.in_(list(emails)),
        )
    ).all()
    for row in rows:
        conn.execute(
            email_suppressions.delete().where(
                email_suppressions.c.business_id == business_id,
                email_suppressions.c.email == row.email,
            )
        )
        digest = suppression_hash(business_id, row.email)
        if not suppressed(conn, business_id=business_id, emails=[row.email]):
            conn.execute(
                email_suppressions.insert().values(
                    business_id=business_id,
                    email=digest,
                    reason=row.reason,
                    created_at=row.created_at,
                )
            )
        hashed += 1
    return {
        "email_messages_anonymised": len(ids),
        "email_events_anonymised": max(events, 0),
        "email_list_members": len(members),
        "email_suppressions_hashed": hashed,
    }


def send_time_refusals(
    conn: Connection, *, business_id: str, recipients: Sequence[Recipient], wiring: Wiring
) -> dict[str, str]:
    """Email → why it may not be sent now: unsubscribed, bounced, suppressed, no consent."""
    emails = [r.email for r in recipients]
    refused = suppressed(conn, business_id=business_id, emails=emails)
    if wiring.filter_suppressed is not None:
        allowed = set(wiring.filter_suppressed(conn, business_id=business_id, identifiers=emails))
        for email in emails:
            if email not in allowed:
                refused.setdefault(email, "suppressed")
    for recipient in recipients:
        if recipient.email in refused:
            continue
        granted = wiring.granted_purposes(
            conn,
            business_id=business_id,
            anonymous_ids=list(recipient.anonymous_ids),
            user_ids=list(recipient.user_ids),
        )
        if granted.get(wiring.consent_purpose) is not True:
            refused[recipient.email] = "no_consent"
    return refused
