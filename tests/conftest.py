"""Shared fixtures: a migrated state store on SQLite and on PostgreSQL, settings, an app."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from accord.accounts.models import Bootstrap, businesses
from accord.accounts.service import bootstrap
from accord.consent.config import set_geo_rule
from accord.core.settings import Settings
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade
from accord.store.schema import metadata
from accord.web.app import create_app
from tests.smtp_sink import SmtpSink, running_sink

# The server that holds throwaway test databases; CI has one on this address.
POSTGRES_ADMIN_URL = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test run and dropped after it.

    PostgreSQL is part of the suite: when it cannot be reached the tests that need
    it fail, they are never skipped.
    """
    name = f"accord_test_{uuid.uuid4().hex[:12]}"
    admin = _psycopg_dsn(POSTGRES_ADMIN_URL)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the storage tests and is unreachable: {exc}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    store = open_store(url)
    with store.write() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state store URL, once per backend: every storage test runs on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        upgrade(url)
        return url
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(tmp_path / "lake"),
        worker_inline=False,
        sqlite_synchronous="NORMAL",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings.resolved_database_url(), sqlite_synchronous="NORMAL")
    yield opened
    opened.dispose()


# Every marketing email shows its sender's postal address; a business without one cannot
# send campaigns (item 15), so the test businesses have one, as real ones must.
TEST_POSTAL_ADDRESS = "1 Test Street, 10115 Berlin, Germany"


def with_postal_address(store: Store, business_id: str) -> None:
    with store.write() as conn:
        conn.execute(
            update(businesses)
            .where(businesses.c.id == business_id)
            .values(address=TEST_POSTAL_ADDRESS)
        )


@pytest.fixture
def keys(store: Store, request: pytest.FixtureRequest) -> Bootstrap:
    """The test business; under `@pytest.mark.keeps_unknown_location` its visitors of
    unknown location fall under the opt-out regime (see `opt_out_where_unknown`)."""
    made = bootstrap(store, name="Test Shop")
    with_postal_address(store, made.business_id)
    if request.node.get_closest_marker("keeps_unknown_location") is not None:
        opt_out_where_unknown(store, made.business_id)
    return made


def opt_out_where_unknown(store: Store, business_id: str) -> None:
    """Make a business's visitors of unknown location fall under the opt-out regime.

    Where a visitor's country cannot be told (the test client has no IP), Accord applies
    the strictest regime and keeps no identifier before consent. Tests of collection,
    profiles and what comes after, which send events with no consent, say explicitly that
    their business is laxer there, as a business can (the geo rule "XX")."""
    with store.write() as conn:
        set_geo_rule(conn, business_id=business_id, region="XX", regime="default")


@pytest.fixture
def opt_out_keys(store: Store) -> Bootstrap:
    """A business whose visitors of unknown location are under the opt-out regime."""
    made = bootstrap(store, name="Test Shop")
    with_postal_address(store, made.business_id)
    opt_out_where_unknown(store, made.business_id)
    return made


@pytest.fixture
def client(settings: Settings, keys: Bootstrap) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server on localhost that keeps every message it receives."""
    with running_sink() as running:
        yield running
