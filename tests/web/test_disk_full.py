"""A full disk (issue 19, item 10): writes answer 503 with Retry-After, /healthz says
degraded, and both recover on their own once space returns."""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg.errors
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import Store, open_store
from accord.store.full import StorageHealth, storage_full
from accord.store.migrate import upgrade
from accord.web.app import create_app
from tests.conftest import opt_out_where_unknown


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    # SQLite only: its page limit makes a real SQLITE_FULL without filling a real disk.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        lake_url=str(tmp_path / "lake"),
        worker_inline=False,
        sqlite_synchronous="NORMAL",
    )


@pytest.fixture
def shop(sqlite_settings: Settings) -> Bootstrap:
    store = open_store(sqlite_settings.resolved_database_url(), sqlite_synchronous="NORMAL")
    try:
        made = bootstrap(store, name="Full Disk Shop")
        # Its events carry no consent and no location: this business keeps them (rule XX).
        opt_out_where_unknown(store, made.business_id)
        return made
    finally:
        store.dispose()


def _engines(store: Store) -> list[Engine]:
    return [e for e in (store.writer, store.eager_writer, store.reader) if e is not None]


@contextmanager
def full_database(store: Store) -> Iterator[None]:
    """Every new connection may not grow the file by a page: SQLite answers SQLITE_FULL,
    "database or disk is full", as it does on a full disk."""

    def cap(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count={pages}")
        cursor.close()

    for engine in _engines(store):
        event.listen(engine, "connect", cap)
        engine.dispose()
    try:
        yield
    finally:
        # Space returns: connections opened from now on may grow the file again.
        for engine in _engines(store):
            event.remove(engine, "connect", cap)
            engine.dispose()


def _batch(n: int) -> dict[str, Any]:
    padding = "x" * 2000
    return {
        "batch": [
            {"type": "track", "event": "Viewed", "userId": f"u{i}", "properties": {"p": padding}}
            for i in range(n)
        ]
    }


def test_item_10_disk_full_answers_503_and_recovers(
    sqlite_settings: Settings, shop: Bootstrap
) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        state = client.app.state.accord  # type: ignore[attr-defined]
        auth = (shop.write_key, "")
        assert client.post("/v1/batch", json=_batch(2), auth=auth).status_code == 200
        assert client.get("/healthz").json()["status"] == "ok"

        with full_database(state.store):
            refused = client.post("/v1/batch", json=_batch(20), auth=auth)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "30"
            body = refused.json()
            assert body["error"] == "storage_full"
            assert body["problems"] == [
                {"field": "storage", "reason": "the disk or the database is full"}
            ]
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            assert "lack of space" in health.json()["problems"][0]

        # Space is back: writes succeed at once, and health clears after its window.
        assert client.post("/v1/batch", json=_batch(20), auth=auth).status_code == 200
        state.storage.window_seconds = 0.2
        time.sleep(0.3)
        health = client.get("/healthz").json()
        assert (health["status"], health["problems"]) == ("ok", [])


def test_item_10_a_page_gets_503_with_retry_after_too(
    sqlite_settings: Settings, shop: Bootstrap
) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        state = client.app.state.accord  # type: ignore[attr-defined]
        with full_database(state.store):
            refused = client.post(
                "/v1/track",
                json={
                    "type": "track",
                    "event": "Big",
                    "userId": "u",
                    "properties": {"p": "x" * 9000},
                },
                auth=(shop.write_key, ""),
                headers={"accept": "text/html"},
            )
        # /v1/ is an API path: JSON even for a browser's Accept.
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"


def _sqlite_full() -> sqlite3.OperationalError:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("PRAGMA max_page_count=2")
    try:
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    except sqlite3.OperationalError as exc:
        return exc
    raise AssertionError("SQLite grew past max_page_count")


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("INSERT", {}, _sqlite_full()),
        OperationalError("INSERT", {}, psycopg.errors.DiskFull("could not extend file")),
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("wrapped"),
    ],
    ids=["sqlite", "postgresql", "filesystem", "cause"],
)
def test_item_10_disk_full_is_recognised_on_every_store(error: BaseException) -> None:
    if isinstance(error, RuntimeError):
        error.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert storage_full(error)


def test_item_10_other_errors_are_not_a_full_disk() -> None:
    assert not storage_full(
        OperationalError("x", {}, sqlite3.OperationalError("database is locked"))
    )
    assert not storage_full(OSError(errno.ENOENT, "No such file"))
    assert not storage_full(psycopg.errors.TooManyConnections("too many"))


def test_item_10_health_probe_reports_a_folder_that_takes_no_writes(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    health = StorageHealth(blocked / "data")
    [problem] = health.problems()
    assert "takes no writes" in problem
    ok = StorageHealth(tmp_path)
    assert ok.problems() == []
    now = [100.0]
    ok.clock = lambda: now[0]
    ok.record_full()
    assert ok.problems()
    now[0] += ok.window_seconds
    assert ok.problems() == []
