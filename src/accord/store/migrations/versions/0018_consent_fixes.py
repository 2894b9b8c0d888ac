"""consent fixes of issue 19: functionality_storage to `preferences`; form evidence

1. `consent_records.evidence`: what a form's consent was given on (double opt-in: form and
   version, language, checkbox text, confirmation message id), hashed with the record when
   present; NULL for every record before it, whose hashes therefore do not change.
2. Consent purposes: functionality_storage moves from `necessary` to `preferences`.

Businesses created before issue 19 (item 14) have Consent Mode's `functionality_storage`
under their `necessary` purpose, so it was granted to every visitor. Only
`security_storage` is strictly necessary; new businesses already have functionality
storage under `preferences`. This moves it for the others: out of `necessary`, into
`preferences` when the business has that purpose (without one, the signal stays denied).
The purpose snapshot of each property's current notice version changes the same way,
since the banner reads its signals from there; the snapshot's names and descriptions,
which the notice's text hash covers, are untouched. Older notice versions keep what they
were published with.

Downgrading drops the evidence column and leaves the purposes as they are (moving the
signal back would grant it again).

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

SIGNAL = "functionality_storage"

_purposes = sa.table(
    "consent_purposes",
    sa.column("id", sa.String),
    sa.column("business_id", sa.String),
    sa.column("key", sa.String),
    sa.column("consent_mode", sa.Text),
)
_notices = sa.table(
    "consent_notices",
    sa.column("id", sa.String),
    sa.column("property_id", sa.String),
    sa.column("version", sa.Integer),
    sa.column("purposes", sa.Text),
)


def moved(purposes: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The purposes with the signal moved from `necessary` to `preferences`, or None when
    `necessary` does not hold it (nothing to do). Pure, for the migration and its test."""
    by_key = {p["key"]: p for p in purposes}
    necessary = by_key.get("necessary")
    if necessary is None or SIGNAL not in (necessary.get("consent_mode") or []):
        return None
    out = []
    for purpose in purposes:
        signals = list(purpose.get("consent_mode") or [])
        if purpose["key"] == "necessary":
            signals = [s for s in signals if s != SIGNAL]
        elif purpose["key"] == "preferences" and SIGNAL not in signals:
            signals = [SIGNAL, *signals]
        out.append({**purpose, "consent_mode": signals})
    return out


def upgrade() -> None:
    op.add_column("consent_records", sa.Column("evidence", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_purposes)).all()
    by_business: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_business.setdefault(row.business_id, []).append(
            {"id": row.id, "key": row.key, "consent_mode": orjson.loads(row.consent_mode)}
        )
    for purposes in by_business.values():
        changed = moved(purposes)
        for before, after in zip(purposes, changed or [], strict=False):
            if before["consent_mode"] != after["consent_mode"]:
                conn.execute(
                    sa.update(_purposes)
                    .where(_purposes.c.id == before["id"])
                    .values(consent_mode=orjson.dumps(after["consent_mode"]).decode())
                )
    latest = (
        sa.select(_notices.c.property_id, sa.func.max(_notices.c.version).label("version"))
        .group_by(_notices.c.property_id)
        .subquery()
    )
    current = conn.execute(
        sa.select(_notices.c.id, _notices.c.purposes).join(
            latest,
            sa.and_(
                latest.c.property_id == _notices.c.property_id,
                latest.c.version == _notices.c.version,
            ),
        )
    ).all()
    for notice in current:
        changed = moved(orjson.loads(notice.purposes))
        if changed is not None:
            conn.execute(
                sa.update(_notices)
                .where(_notices.c.id == notice.id)
                .values(purposes=orjson.dumps(changed).decode())
            )


def downgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("evidence")
