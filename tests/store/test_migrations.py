"""Migrations build the same schema as the table definitions, and go down and up again."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from accord.store.db import normalise_url
from accord.store.migrate import downgrade, upgrade
from accord.store.schema import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    downgrade(database_url, "base")
    engine = create_engine(normalise_url(database_url))
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert {t.name for t in metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_item_14_functionality_storage_moves_to_preferences(database_url: str) -> None:
    """A business made before item 14 has functionality_storage under `necessary`; the
    data migration moves it to `preferences`, in the purposes and the current notice."""
    downgrade(database_url, "0015")
    engine = create_engine(normalise_url(database_url))
    now = datetime.now(UTC)
    old = [
        ("necessary", ["security_storage", "functionality_storage"]),
        ("preferences", ["personalization_storage"]),
        ("statistics", ["analytics_storage"]),
    ]
    snapshot = [{"key": key, "name": key, "consent_mode": signals} for key, signals in old]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO businesses (id, name, slug, created_at)"
                " VALUES ('b1', 'Old', 'old', :now)  -- made before item 14"
            ),
            {"now": now},
        )
        for n, (key, signals) in enumerate(old):
            conn.execute(
                text(
                    "INSERT INTO consent_purposes (id, business_id, key, texts, legal_basis,"
                    " required, tcf_purposes, consent_mode, cookies, position, created_at)"
                    " VALUES (:id, 'b1', :key, '{}', 'consent', false, '[]', :cm, '[]', :n, :now)"
                ),
                {"id": f"p{n}", "key": key, "cm": json.dumps(signals), "n": n, "now": now},
            )
        conn.execute(
            text(
                "INSERT INTO consent_properties (id, business_id, key, name, kind, cookie_name,"
                " cookie_max_age_days, created_at)"
                " VALUES ('prop1', 'b1', 'web', 'Web', 'web', 'accord_consent', 365, :now)"
            ),
            {"now": now},
        )
        for version in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO consent_notices (id, business_id, property_id, version, variant,"
                    " weight, default_language, texts, purposes, layout, colours, text_hashes,"
                    " published_at) VALUES (:id, 'b1', 'prop1', :v, 'A', 1, 'en', '{}', :p,"
                    " 'bar', '{}', '{}', :now)"
                ),
                {"id": f"n{version}", "v": version, "p": json.dumps(snapshot), "now": now},
            )
    upgrade(database_url)
    with engine.connect() as conn:
        stored = {
            key: json.loads(cm)
            for key, cm in conn.execute(text("SELECT key, consent_mode FROM consent_purposes"))
        }
        notices = {
            v: {p["key"]: p["consent_mode"] for p in json.loads(p)}
            for v, p in conn.execute(text("SELECT version, purposes FROM consent_notices"))
        }
    engine.dispose()
    assert stored == {
        "necessary": ["security_storage"],
        "preferences": ["functionality_storage", "personalization_storage"],
        "statistics": ["analytics_storage"],
    }
    assert notices[2] == stored  # the current notice, which the banner reads
    assert notices[1]["necessary"] == ["security_storage", "functionality_storage"]
