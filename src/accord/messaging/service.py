"""Email suppression, the send-time check, and a person's email history for subject rights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, or_, select, update

from accord.audiences.service import suppression_lists
from accord.messaging.models import (
    email_events,
    email_list_members,
    email_lists,
    email_messages,
)
from accord.messaging.ports import Recipient
from accord.reach import service as reach

# Suppression and send-time checks ------------------------------------------------------


def suppress_email(conn: Connection, *, business_id: str, email: str, reason: str) -> None:
    """Put an address on the business's suppression list (unsubscribes, bounces, complaints)."""
    reach.suppress(
        conn,
        business_id=business_id,
        kind="email",
        value=email,
        reason=reason,
        source="email",
        channel="email",
    )


def is_unsubscribed(conn: Connection, *, business_id: str, email: str) -> bool:
    found = reach.suppressed(
        conn, business_id=business_id, kind="email", values=[email], channel="email"
    )
    return bool(found)


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
    suppressions = reach.entries(
        conn, business_id=business_id, identifiers=[("email", e) for e in emails]
    )
    return {
        "messages": [_plain(m) for m in messages],
        "events": [_plain(e) for e in events],
        "suppressions": suppressions,
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
    anonymised (campaign statistics keep their counts, nothing names the person). Their
    suppressions are reach's to keep as hashes."""
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
    return {
        "email_messages_anonymised": len(ids),
        "email_events_anonymised": max(events, 0),
        "email_list_members": len(members),
    }


def send_time_refusals(
    conn: Connection, *, business_id: str, recipients: Sequence[Recipient], purpose: str
) -> dict[str, str]:
    """Email → why reach refuses it now (unsubscribed, bounced, no_consent...)."""
    decided = reach.decisions(
        conn,
        business_id=business_id,
        people=[
            reach.Addressee(
                key=r.email,
                anonymous_ids=r.anonymous_ids,
                user_ids=r.user_ids,
                emails=(r.email,),
            )
            for r in recipients
        ],
        channel="email",
        purpose=purpose,
        lists=suppression_lists,
    )
    return {email: d.reason for email, d in decided.items() if d.reason is not None}


def sent_messages(conn: Connection, *, business_id: str, campaign_id: str) -> list[tuple[str, str]]:
    """The (message id, address) of every message of a campaign that went out, in send order."""
    rows = conn.execute(
        select(email_messages.c.id, email_messages.c.email)
        .where(
            email_messages.c.business_id == business_id,
            email_messages.c.campaign_id == campaign_id,
            email_messages.c.status == "sent",
        )
        .order_by(email_messages.c.sent_at, email_messages.c.id)
    ).all()
    return [(row.id, row.email) for row in rows]
