"""`accord people create` on SQLite and PostgreSQL: created, refused, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.accounts import people, team
from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap, role_of
from accord.cli import app
from accord.core.settings import Settings
from accord.store.db import Store


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        "ACCORD_DATA_DIR": str(tmp_path / "data"),
        "ACCORD_DATABASE_URL": settings.resolved_database_url(),
        "COLUMNS": "200",
    }


def create(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["people", "create", *args], env=env)
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_a_new_person_gets_a_generated_password_shown_once(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    out = create(
        env,
        "--business",
        keys.business_id,
        "--email",
        "Ann@Shop.example",
        "--role",
        "admin",
        "--json",
    )
    created = json.loads(out.strip().splitlines()[-1])
    assert created["created"] is True and created["email"] == "ann@shop.example"
    assert len(created["password"]) >= people.MIN_PASSWORD
    with store.read() as conn:
        person = people.verify_password(
            conn, email="ann@shop.example", password=created["password"]
        )
        assert person is not None
        assert role_of(conn, business_id=keys.business_id, person_id=person.id) == "admin"


def test_a_given_password_and_name_are_used_and_the_write_key_names_the_business(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    out = create(
        env,
        "--business",
        keys.write_key,
        "--email",
        "bo@shop.example",
        "--role",
        "employee",
        "--name",
        "Bo Berg",
        "--password",
        "a long enough passphrase",
    )
    assert "password:" not in out
    with store.read() as conn:
        person = people.verify_password(
            conn, email="bo@shop.example", password="a long enough passphrase"
        )
        assert person is not None and person.name == "Bo Berg"
        assert role_of(conn, business_id=keys.business_id, person_id=person.id) == "employee"


def test_a_member_is_refused_and_an_existing_person_joins_another_business(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    args = ["--email", "cy@shop.example", "--role", "employee"]
    create(env, "--business", keys.business_id, *args)
    refused = create(env, "--business", keys.business_id, *args, code=1)
    assert "already a member" in refused
    other = bootstrap(store, name="Other Shop")
    # An existing account keeps its password: giving one is refused, leaving it out joins.
    create(env, "--business", other.business_id, *args, "--password", "x" * 12, code=1)
    out = create(env, "--business", other.business_id, *args)
    assert "existing account added" in out and "password:" not in out
    with store.read() as conn:
        member_ids = [m.email for m in team.members(conn, business_id=other.business_id)]
    assert member_ids == ["cy@shop.example"]


def test_bad_input_is_refused_and_nothing_changes(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    base = ["--business", keys.business_id, "--email", "di@shop.example"]
    assert "role: one of" in create(env, *base, "--role", "owner", code=1)
    assert "password" in create(env, *base, "--role", "admin", "--password", "short", code=1)
    assert "email" in create(
        env, "--business", keys.business_id, "--email", "not-an-email", "--role", "admin", code=1
    )
    create(
        env, "--business", "biz_nothing", "--email", "di@shop.example", "--role", "admin", code=2
    )
    with store.read() as conn:
        assert people.person_by_email(conn, email="di@shop.example") is None
        assert team.members(conn, business_id=keys.business_id) == []
