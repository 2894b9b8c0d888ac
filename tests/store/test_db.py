"""Store connections: URL normalisation, SQLite durability settings, UTC datetimes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, literal, select, text
from sqlalchemy.exc import OperationalError

from accord.accounts.models import businesses
from accord.core.errors import InvalidInput
from accord.store.db import Store, normalise_url, open_store
from accord.store.metadata import UTCDateTime, utc_day
from accord.store.migrate import upgrade


def test_postgres_urls_get_the_psycopg_driver() -> None:
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'state.db'}"
    upgrade(url)
    store = open_store(url)
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    store.dispose()


def test_datetimes_come_back_aware_in_utc(database_url: str) -> None:
    store = open_store(database_url)
    moment = datetime(2026, 11, 23, 12, 30, 15, 123000, tzinfo=UTC)
    with store.write() as conn:
        conn.execute(businesses.insert().values(id="b1", name="B", slug="b", created_at=moment))
    with store.read() as conn:
        assert conn.execute(select(businesses.c.created_at)).scalar() == moment
    store.dispose()


def test_naive_datetimes_are_refused(database_url: str) -> None:
    store = open_store(database_url)
    with pytest.raises(Exception, match="naive"), store.write() as conn:
        conn.execute(
            businesses.insert().values(
                id="b2", name="B", slug="b2", created_at=datetime(2026, 1, 1)
            )
        )
    store.dispose()


def test_utc_day_is_the_day_in_utc_whatever_the_offset_or_the_session_zone(store: Store) -> None:
    new_york = timezone(timedelta(hours=-5))
    instants = {
        datetime(2026, 12, 1, 23, 30, tzinfo=new_york): "2026-12-02",
        datetime(2026, 12, 1, 0, 0, tzinfo=UTC): "2026-12-01",
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC): "2026-12-31",
    }
    with store.read() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        for instant, day in instants.items():
            assert conn.execute(select(utc_day(literal(instant, UTCDateTime())))).scalar() == day


def test_nul_is_refused_in_inserts_of_many_rows_too(store: Store) -> None:
    """An insert of many rows that returns ids goes out as one multi-row statement, its
    values bound as one flat tuple (SQLite) or one dict of numbered names (PostgreSQL):
    clean rows go in, and a NUL in any row's text is refused naming the column."""
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [
        {"id": f"m{i}", "name": f"M{i}", "slug": f"m{i}", "created_at": moment} for i in range(3)
    ]
    many = businesses.insert().returning(businesses.c.id, sort_by_parameter_order=True)
    with store.write() as conn:
        assert conn.execute(many, rows).scalars().all() == ["m0", "m1", "m2"]
    bad = [{**row, "id": f"n{i}", "slug": f"n{i}"} for i, row in enumerate(rows)]
    bad[2]["name"] = "N\x00"
    with pytest.raises(InvalidInput) as refused, store.write() as conn:
        conn.execute(many, bad)
    assert [(p.field, p.reason) for p in refused.value.problems] == [
        ("name", "must not contain the NUL character")
    ]
    with store.read() as conn:
        stored = conn.execute(select(businesses.c.id).where(businesses.c.id.like("n%"))).all()
    assert stored == []


NOW = datetime(2026, 12, 7, tzinfo=UTC)


def test_the_group_commit_waits_for_a_held_sqlite_write_lock(tmp_path: Path) -> None:
    # A regression: BEGIN IMMEDIATE, sent straight to the driver, raised the driver's own
    # "database is locked", which `write_soon`'s retry did not recognise: a collection
    # call arriving while a job held the write lock failed with a 500 at once.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    store = open_store(url)
    holder = open_store(url)
    release = threading.Event()

    def hold() -> None:
        with holder.write() as conn:
            conn.execute(businesses.insert().values(id="b1", name="B", slug="b", created_at=NOW))
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.2)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()

    def add(conn: Connection) -> int:
        conn.execute(businesses.insert().values(id="b2", name="C", slug="c", created_at=NOW))
        return 2

    assert store.write_soon(add, timeout=10) == 2
    assert time.monotonic() - started >= 0.05
    thread.join()
    with store.read() as conn:
        assert conn.execute(select(businesses.c.id).order_by("id")).scalars().all() == ["b1", "b2"]
    with holder.write() as conn, pytest.raises(OperationalError, match="locked"):
        store.write_soon(add, timeout=0.05)
    store.dispose()
    holder.dispose()
