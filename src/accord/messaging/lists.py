"""Email lists and their members. Being on a list is not consent: sends check it."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select, update

from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.identity.service import normalise_email
from accord.messaging.models import ListIn, MemberIn, email_list_members, email_lists
from accord.messaging.ports import Recipient


def create_list(conn: Connection, *, business_id: str, data: ListIn) -> str:
    list_id = new_id("lst")
    conn.execute(
        email_lists.insert().values(
            id=list_id, business_id=business_id, name=data.name, created_at=utcnow()
        )
    )
    return list_id


def require_list(conn: Connection, *, business_id: str, list_id: str) -> str:
    """The list's name; another business's list is not found."""
    name = conn.execute(
        select(email_lists.c.name).where(
            email_lists.c.id == list_id, email_lists.c.business_id == business_id
        )
    ).scalar()
    if name is None:
        raise NotFound(f"list {list_id}")
    return str(name)


def add_member(conn: Connection, *, business_id: str, list_id: str, member: MemberIn) -> None:
    """Add (or refresh) a list member."""
    require_list(conn, business_id=business_id, list_id=list_id)
    email = normalise_email(str(member.email))
    key = and_(email_list_members.c.list_id == list_id, email_list_members.c.email == email)
    values = {
        "anonymous_id": member.anonymous_id,
        "user_id": member.user_id,
        "traits": orjson.dumps(member.traits).decode(),
    }
    if conn.execute(select(email_list_members.c.email).where(key)).first() is None:
        conn.execute(
            email_list_members.insert().values(
                list_id=list_id, email=email, business_id=business_id, added_at=utcnow(), **values
            )
        )
    else:
        conn.execute(update(email_list_members).where(key).values(**values))


def list_recipients(conn: Connection, *, business_id: str, list_id: str) -> list[Recipient]:
    require_list(conn, business_id=business_id, list_id=list_id)
    rows = conn.execute(
        select(email_list_members)
        .where(email_list_members.c.list_id == list_id)
        .order_by(email_list_members.c.email)
    ).all()
    return [
        Recipient(
            email=row.email,
            anonymous_ids=(row.anonymous_id,) if row.anonymous_id else (),
            user_ids=(row.user_id,) if row.user_id else (),
            traits=orjson.loads(row.traits),
        )
        for row in rows
    ]


def list_lists(conn: Connection, *, business_id: str) -> list[Any]:
    """The business's lists with their member counts, by name."""
    return list(
        conn.execute(
            select(email_lists.c.id, email_lists.c.name, func.count(email_list_members.c.email))
            .select_from(
                email_lists.outerjoin(
                    email_list_members, email_list_members.c.list_id == email_lists.c.id
                )
            )
            .where(email_lists.c.business_id == business_id)
            .group_by(email_lists.c.id, email_lists.c.name)
            .order_by(email_lists.c.name)
        ).all()
    )
