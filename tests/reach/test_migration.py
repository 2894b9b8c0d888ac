"""Migration 0013 merges email's own suppression list into the one list, normalising
every value as identity does, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.identity.service import set_rules
from accord.reach import service as reach
from accord.store.db import Store, open_store
from accord.store.migrate import downgrade, upgrade

THEN = datetime(2026, 11, 1, tzinfo=UTC)


def test_both_lists_become_one_with_phones_in_e164(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    business = keys.business_id
    with store.write() as conn:
        set_rules(conn, business_id=business, rules={"default_phone_region": "FR"})
    url = settings.resolved_database_url()
    # A pooled SQLite connection would go on reading the schema it started with.
    store.dispose()
    downgrade(url, "0012")
    store = open_store(url)
    old = [
        ("phone", "0612345678", "manual"),  # as audiences stored a national number
        ("email", "ann@example.org", "unsubscribe"),
        ("user_id", "u-1", "manual"),
    ]
    email = [("ann@example.org", "unsubscribed"), ("sha256:abc", "hard_bounce")]
    with store.write() as conn:
        for kind, value, reason in old:
            conn.execute(
                text("INSERT INTO suppressions VALUES (:b, :k, :v, :r, :t)"),
                {"b": business, "k": kind, "v": value, "r": reason, "t": THEN},
            )
        for value, reason in email:
            conn.execute(
                text("INSERT INTO email_suppressions VALUES (:b, :v, :r, :t)"),
                {"b": business, "v": value, "r": reason, "t": THEN},
            )
    upgrade(url)
    with store.read() as conn:
        rows = reach.list_suppressions(conn, business_id=business)
    assert [(r["kind"], r["value"], r["reason"], r["source"], r["channel"]) for r in rows] == [
        # Both lists named Ann's address: the entry that stops every channel stays.
        ("email", "ann@example.org", "unsubscribe", "api", None),
        ("email", "sha256:abc", "hard_bounce", "email", "email"),
        ("phone", "+33612345678", "manual", "api", None),
        ("user_id", "u-1", "manual", "api", None),
    ]
    with store.read() as conn:
        tables = set(
            conn.execute(
                text("SELECT name FROM sqlite_master")
                if conn.dialect.name == "sqlite"
                else text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert "email_suppressions" not in tables
    store.dispose()
