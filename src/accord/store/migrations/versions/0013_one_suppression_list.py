"""suppressions: one list for every channel; email_suppressions merged into it

Values are normalised again through identity.rules (phones to E.164 in the business's
default region), each entry says who wrote it (`source`), and email's own list, with
the hashes it keeps for erased people, moves in and goes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from accord.identity.rules import normalise

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.String(length=40)
_WHEN = sa.DateTime(timezone=True)
# Typed views of the tables as they are, so datetimes read back as datetimes on SQLite.
_general = sa.table(
    "suppressions",
    sa.column("business_id", _ID),
    sa.column("kind", sa.String()),
    sa.column("value", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("created_at", _WHEN),
)
_email = sa.table(
    "email_suppressions",
    sa.column("business_id", _ID),
    sa.column("email", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("created_at", _WHEN),
)


def _regions(conn: sa.Connection) -> dict[str, str | None]:
    rows = conn.execute(sa.text("SELECT business_id, rules FROM identity_rules")).all()
    return {row.business_id: orjson.loads(row.rules).get("default_phone_region") for row in rows}


def _renormalised(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every entry of both lists with its value as identity.rules writes it; the first
    entry of a value wins, as on insert."""
    regions = _regions(conn)
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    general = conn.execute(sa.select(_general)).all()
    email = conn.execute(sa.select(_email)).all()
    entries: list[tuple[Any, ...]] = [
        (r.business_id, r.kind, r.value, r.reason, r.created_at, "api", None) for r in general
    ]
    # Email's own list stopped email only.
    entries += [
        (r.business_id, "email", r.email, r.reason, r.created_at, "email", "email") for r in email
    ]
    for business_id, kind, value, reason, created_at, source, channel in entries:
        if kind in ("email", "phone") and not value.startswith("sha256:"):
            value = normalise(kind, value, phone_region=regions.get(business_id)) or value
        key = (business_id, kind, value)
        row = {
            "business_id": business_id,
            "kind": kind,
            "value": value,
            "reason": reason,
            "source": source,
            "channel": channel,
            "created_at": created_at,
        }
        # One entry per value: the one that stops more (every channel) wins, then the older.
        rank = (channel is not None, created_at)
        old = merged.get(key)
        if old is None or rank < (old["channel"] is not None, old["created_at"]):
            merged[key] = row
    return list(merged.values())


def upgrade() -> None:
    conn = op.get_bind()
    rows = _renormalised(conn)
    op.drop_table("email_suppressions")
    op.drop_table("suppressions")
    table = op.create_table(
        "suppressions",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("business_id", "kind", "value", name=op.f("pk_suppressions")),
    )
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_general, sa.column("channel", sa.String()))).all()
    op.drop_table("suppressions")
    general = op.create_table(
        "suppressions",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("business_id", "kind", "value", name=op.f("pk_suppressions")),
    )
    email = op.create_table(
        "email_suppressions",
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_email_suppressions_business_id_businesses"),
        ),
        sa.PrimaryKeyConstraint("business_id", "email", name=op.f("pk_email_suppressions")),
    )
    # Email entries go back to both lists, as messaging wrote them.
    plain = [
        {
            "business_id": r.business_id,
            "kind": r.kind,
            "value": r.value,
            "reason": r.reason[:32],
            "created_at": r.created_at,
        }
        for r in rows
        if len(r.value) <= 255 and r.channel is None
    ]
    by_email = [
        {
            "business_id": r.business_id,
            "email": r.value,
            "reason": r.reason,
            "created_at": r.created_at,
        }
        for r in rows
        if r.kind == "email"
    ]
    if plain:
        op.bulk_insert(general, plain)
    if by_email:
        op.bulk_insert(email, by_email)
