"""The audit log's one writer of actions, for every door: API routes, console pages, CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from accord.accounts.models import Actor
from accord.accounts.service import audit

# The audit log's asset_id column holds ids (40 characters); longer keys go in the details.
ASSET_ID_MAX = 40


def record_action(
    conn: Connection,
    *,
    business_id: str,
    actor: Actor,
    action: str,
    ip: str | None = None,
    **details: Any,
) -> None:
    """Note in the audit log that `actor` did `action` (in `conn`'s transaction).

    The one writer of action entries, whichever door the action came through: an API
    route, a console page (both through `web.store_work.record`) or a CLI command (with
    `cli_actor`), so the same action reads the same in the log. `asset` is (kind, id); the
    rest of `details` is what was done."""
    asset = details.pop("asset", None)
    if asset is not None and len(asset[1]) > ASSET_ID_MAX:  # a long key: kept in full below
        details["asset"] = list(asset)
        asset = None
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action=action,
        asset=asset,
        after=details or None,
        ip=ip,
    )


def cli_actor(command: str) -> Actor:
    """Who the audit log names for an `accord` command: the operator at the machine."""
    return Actor(kind="cli", label=f"accord {command}")
